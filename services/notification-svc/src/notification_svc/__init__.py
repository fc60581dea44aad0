"""notification-svc: mail for drivers, learned from events."""
