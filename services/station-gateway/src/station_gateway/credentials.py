"""Station credentials at the handshake and the display page: argon2id verification, a
verified password remembered while its stored hash is unchanged, failed guesses throttled.

A reconnect storm (a site's power comes back, thousands of stations reconnect) would otherwise
cost one argon2 hash per station. A successful check is remembered per (station, keyed digest
of the password, stored hash): a changed or revoked credential takes effect at once because the
stored hash is part of the key, so the memory can last hours (``credential_cache_s``), bounded
as least recently used. The digest is keyed with a secret made per process, so the entries are
useless outside it. Failures are never remembered (the throttle bounds what they cost), and
hashing runs in threads, a few at a time.

An unknown station id is checked against a dummy hash, so it takes as long to refuse as a
registered one (no enumeration by timing). Failures are counted per (station, address), per
station and per address, with exponential back-off (``plugpay_platform.throttle``). The per
station and per address rules spare the addresses a station has already signed in from: a
guesser elsewhere cannot lock a station out of its own connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from plugpay_events.types import utc_now
from plugpay_platform.database import Database
from plugpay_platform.throttle import FailureThrottle, ThrottleRule
from sqlalchemy import RowMapping

from station_gateway.repository import Repository

# One address guessing one station's password: slowed quickly and hard.
STATION_AT_ADDRESS = ThrottleRule(free_failures=5, base_delay_s=2, max_delay_s=15 * 60)
# One station guessed from many addresses (its known addresses are spared).
STATION = ThrottleRule(free_failures=20, base_delay_s=1, max_delay_s=5 * 60)
# One address guessing many stations (its stations' known pairs are spared).
ADDRESS = ThrottleRule(free_failures=50, base_delay_s=1, max_delay_s=15 * 60)
# Addresses remembered per station: a station behind a changing NAT keeps a few.
KNOWN_ADDRESSES = 8
# Verified passwords remembered per process: more than the stations one process holds.
VERIFIED_ENTRIES = 20_000


class StationAuthRefused(Exception):
    """A refused station sign-in: a machine-readable ``reason``, a ``message``, and for
    ``too_many_attempts`` the seconds to wait."""

    def __init__(self, reason: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from a Basic ``Authorization`` header, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class CredentialVerifier:
    def __init__(
        self,
        database: Database,
        ttl_s: float,
        *,
        concurrency: int = 2,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.ttl_s = ttl_s
        self.clock = clock
        self.throttle = FailureThrottle()
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None
        self._digest_key = secrets.token_bytes(32)
        self._verified: OrderedDict[tuple[str, bytes, str], float] = OrderedDict()
        self.full_checks = 0  # argon2 verifications run (what a remembered password saves)
        self._slots = asyncio.Semaphore(concurrency)
        self._known: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    async def authenticate(
        self, station_id: str, credentials: tuple[str, str] | None, address: str | None
    ) -> RowMapping:
        """Sign a station in by its Basic credentials and return its row (read once for the
        whole handshake), or raise ``StationAuthRefused``.

        No credentials at all is not a guess (a browser asks before it sends them): refused,
        not counted.
        """
        address = address or "unknown"
        known_address = self._is_known(station_id, address)
        pair = ("station@address", station_id, address)
        keys: dict[Hashable, ThrottleRule] = {pair: STATION_AT_ADDRESS}
        if not known_address:
            keys[("station", station_id)] = STATION
            keys[("address", address)] = ADDRESS
        now = self.clock()
        wait = self.throttle.retry_after_s(keys, now)
        if wait is not None:
            raise StationAuthRefused(
                "too_many_attempts",
                f"too many failed sign-ins; try again in {wait} s",
                retry_after_s=wait,
            )
        if credentials is None:
            raise StationAuthRefused(
                "unauthenticated", "sign in with the station's id and password"
            )
        user, password = credentials
        # A mismatched user is checked too, so every refusal costs the same time.
        station = await self.verify(station_id, password)
        if station is None or user != station_id:
            self.throttle.fail(keys, self.clock())
            raise StationAuthRefused("unauthenticated", "unknown station or wrong password")
        self.throttle.forget([pair])
        self._remember(station_id, address)
        return station

    async def verify(self, station_id: str, password: str) -> RowMapping | None:
        """The station's row if ``password`` is its password, else None."""
        async with self.database.read() as session:
            station = await Repository(session).station(station_id)
        stored = station["password_hash"] if station else None
        registered = station if stored else None
        stored = stored or await self._dummy()
        digest = hashlib.blake2b(password.encode(), key=self._digest_key).digest()
        key = (station_id, digest, stored)
        now = time.monotonic()
        verified_at = self._verified.get(key)
        if verified_at is not None and now - verified_at < self.ttl_s:
            self._verified.move_to_end(key)
            return registered
        async with self._slots:
            self.full_checks += 1
            ok = await asyncio.to_thread(self._check, stored, password)
        if not ok or registered is None:
            return None
        self._verified[key] = now
        self._verified.move_to_end(key)
        while len(self._verified) > VERIFIED_ENTRIES:
            self._verified.popitem(last=False)
        return registered

    async def _dummy(self) -> str:
        # The parameters of the credentials stations really have (auth-svc hashes them), so a
        # check against the dummy costs what a real one does: no timing tells ids apart.
        if self._dummy_hash is None:
            async with self.database.read() as session:
                real = await Repository(session).any_password_hash()
            hasher = (
                PasswordHasher.from_parameters(extract_parameters(real)) if real else self._hasher
            )
            self._dummy_hash = await asyncio.to_thread(hasher.hash, secrets.token_urlsafe(24))
        return self._dummy_hash

    def _check(self, stored: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _is_known(self, station_id: str, address: str) -> bool:
        return address in self._known.get(station_id, ())

    def _remember(self, station_id: str, address: str) -> None:
        addresses = self._known.pop(station_id, OrderedDict())
        addresses.pop(address, None)
        addresses[address] = None
        while len(addresses) > KNOWN_ADDRESSES:
            addresses.popitem(last=False)
        self._known[station_id] = addresses
        while len(self._known) > 100_000:
            self._known.popitem(last=False)
