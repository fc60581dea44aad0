"""The driver's side as an HTTP client: log in, scan or type a code, follow, stop, receipt.

Used by `plugpay drive` (demos, support staff reproducing a problem), by the end-to-end tests
and by the benchmarks as "the phone".
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

TERMINAL_STATES = {"billed", "denied", "expired", "abandoned", "failed"}


class DriverError(RuntimeError):
    """The back office refused; ``reason`` is its machine-readable reason."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('reason')}: {body.get('message')}")
        self.status = status
        self.reason = str(body.get("reason"))
        self.body = body


class DriverClient:
    """A logged-in driver's phone."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.access_token: str | None = None
        self.refresh_token: str | None = None

    async def __aenter__(self) -> DriverClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}

    async def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"reason": "not_json", "message": response.text[:200]}
        if response.status_code >= 400:
            raise DriverError(response.status_code, body if isinstance(body, dict) else {})
        return body

    async def login(self, email: str, password: str) -> None:
        body = await self._json(
            await self.http.post("/auth/token", data={"username": email, "password": password})
        )
        self.access_token = body["access_token"]
        self.refresh_token = body.get("refresh_token")

    async def scan(self, code: str) -> uuid.UUID:
        """Send what the camera read (QR URL or token) or what the driver typed; a code
        issued a moment ago is accepted at once (session-svc waits for a typed one)."""
        body = await self._json(
            await self.http.post("/sessions/scan", json={"code": code}, headers=self.headers)
        )
        return uuid.UUID(str(body["session_id"]))

    async def session(self, session_id: uuid.UUID) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            await self.http.get(f"/sessions/{session_id}", headers=self.headers)
        )
        return result

    async def wait_for_state(
        self, session_id: uuid.UUID, states: set[str], *, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Poll the session until it is in one of ``states`` (an observable condition)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                current = await self.session(session_id)
            except DriverError as error:
                # Right after the 202 the session store may not have the session yet.
                if error.status != 404 or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            if current.get("status") in states:
                return current
            if loop.time() > deadline:
                raise TimeoutError(f"session {session_id} stuck in {current.get('state')}")
            await asyncio.sleep(0.1)

    async def follow(self, session_id: uuid.UUID) -> AsyncIterator[dict[str, Any]]:
        """Live updates over Server-Sent Events until the session ends."""
        async with self.http.stream(
            "GET", f"/sessions/{session_id}/events", headers=self.headers, timeout=None
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                await self._json(response)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    update = json.loads(line[5:].strip())
                    yield update
                    if update.get("status") in TERMINAL_STATES:
                        return

    async def stop(self, session_id: uuid.UUID) -> None:
        await self._json(await self.http.post(f"/sessions/{session_id}/stop", headers=self.headers))

    async def receipt(self, session_id: uuid.UUID) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            await self.http.get(f"/billing/receipts/{session_id}", headers=self.headers)
        )
        return result

    async def account(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            await self.http.get("/billing/account", headers=self.headers)
        )
        return result


async def drive(
    base_url: str, email: str, password: str, code: str, *, stop_after_s: float | None
) -> int:
    """`plugpay drive`: one session from the driver's side, printed as it happens."""
    async with DriverClient(base_url) as phone:
        await phone.login(email, password)
        try:
            session_id = await phone.scan(code)
        except DriverError as error:
            print(f"refused: {error.reason} — {error.body.get('message')}")
            return 1
        print(f"session {session_id}")
        stopper: asyncio.Task[None] | None = None
        if stop_after_s is not None:

            async def stop_later() -> None:
                await phone.wait_for_state(session_id, {"charging"}, timeout_s=60)
                await asyncio.sleep(stop_after_s)
                await phone.stop(session_id)

            stopper = asyncio.create_task(stop_later())
        async for update in phone.follow(session_id):
            print(json.dumps(update, default=str))
        if stopper is not None:
            stopper.cancel()
        final = await phone.session(session_id)
        if final.get("status") == "billed":
            print(json.dumps(await phone.receipt(session_id), indent=2, default=str))
        return 0
