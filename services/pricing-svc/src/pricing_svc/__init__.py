"""Pricing service: stations' commercial data, tariffs, quotes, final cost."""
