"""Billing service: double-entry ledger, wallets, holds, payments, receipts."""
