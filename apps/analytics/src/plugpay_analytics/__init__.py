"""Plugpay analytics: replay the event log into files or DuckDB, rebuild projections, report."""
