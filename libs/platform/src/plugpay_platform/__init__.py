"""Plumbing every Plugpay service shares, configured, never copied."""
