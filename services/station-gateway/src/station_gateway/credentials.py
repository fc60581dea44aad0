"""Station credentials at the handshake: argon2id verification, cached briefly.

A reconnect storm (a site's power comes back, hundreds of stations reconnect) would otherwise
cost one argon2 hash per attempt; results are cached per (station, password digest, stored hash)
so a changed credential takes effect at once, and hashing runs in threads, a few at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from plugpay_platform.database import Database

from station_gateway.repository import Repository


class CredentialVerifier:
    def __init__(self, database: Database, ttl_s: float, *, concurrency: int = 2) -> None:
        self.database = database
        self.ttl_s = ttl_s
        self._hasher = PasswordHasher()
        self._cache: dict[tuple[str, bytes, str], tuple[bool, float]] = {}
        self._slots = asyncio.Semaphore(concurrency)

    async def verify(self, station_id: str, password: str) -> bool:
        async with self.database.read() as session:
            station = await Repository(session).station(station_id)
        stored = station["password_hash"] if station else None
        if not stored:
            return False
        key = (station_id, hashlib.sha256(password.encode()).digest(), stored)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < self.ttl_s:
            return cached[0]
        async with self._slots:
            ok = await asyncio.to_thread(self._check, stored, password)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (ok, now)
        return ok

    def _check(self, stored: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
