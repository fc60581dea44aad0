"""The plugpay command: the embedded all-in-one process and the tools around it."""
