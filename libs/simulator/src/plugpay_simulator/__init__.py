"""Simulated charge points (OCPP 1.6J, 2.0.1 and 2.1, over real WebSockets) and a driver's phone
(the public HTTP API), for `plugpay simulate` / `plugpay drive`, the tests and the benchmarks.
A library: it is imported, never run by itself."""
