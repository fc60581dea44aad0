"""Auth service: users, organisations, tokens, station credentials."""
