"""Station gateway: OCPP 1.6J/2.0.1/2.1 endpoint, session codes, station display."""
