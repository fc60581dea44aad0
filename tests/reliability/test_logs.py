"""No password, token, session code or card data in any log line, and no forged lines: scans
the logs of every local stack (.local/stack*/**/*.log — the e2e run's main stack, the benchmark
and chaos instances, nginx) and this suite's own output for the known test passwords, access
tokens (JWTs other than the public, single-use session codes), the refresh tokens this suite
was issued, card numbers (Luhn-valid 13-19 digit runs), typed session codes (a "code" field
holding one, or a code this run was issued), and a line a station forged by sending a frame
with a line break (a line that starts with the marker the injection carried)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
import pytest
import support
from ocpp.v16 import call as call16
from plugpay_simulator.stations import SimulatedStation

pytestmark = pytest.mark.infra
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.(eyJ[A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]*")
CARD = re.compile(r"(?<![\w.:/-])(?:\d[ -]?){12,18}\d(?![\w.:/-])")
# OpenTelemetry ids are hex and sometimes all digits (a 16-digit span id can pass Luhn).
TRACE_IDS = re.compile(r'"(?:trace_id|span_id)": "[0-9a-f]+"')
# A "code" field holding a typed session code (alphabet of plugpay_events.session_code), also
# JSON inside a JSON string (backslashes), in a Python repr (single quotes).
TYPED_CODE_FIELD = re.compile(
    r"""(?<![A-Za-z_])code\\*["']\s*[:=]\s*\\*["']([34679ACDEFGHJKMNPQRTUVWXY]{6})\\*["']"""
)
# What a station's frame carries after a line break, to forge a line of its own.
FORGED_MARKER = "PLUGPAY-FORGED-LINE"
KNOWN_PASSWORDS = {
    "demo-password-1",
    "demo-station-secret",
    support.TEST_PASSWORD,
    support.STATION_PASSWORD,
}


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _is_session_code(payload_b64: str) -> bool:
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except ValueError:
        return False
    return isinstance(claims, dict) and claims.get("aud") == "plugpay-session-code"


def _secrets() -> set[str]:
    found = set(KNOWN_PASSWORDS)
    for path in (support.ROOT / ".local").glob("stack*/secrets/admin-password"):
        found.add(path.read_text().strip())
    return {s for s in found if len(s) >= 8}


def scan(
    paths: list[Path], extra_secrets: set[str], typed_codes: frozenset[str] = frozenset()
) -> list[str]:
    secrets = _secrets() | extra_secrets
    secret_re = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
    # Codes are short: only as a whole word, never inside a longer token.
    code_re = (
        re.compile(
            "(?<![A-Za-z0-9])(" + "|".join(re.escape(c) for c in sorted(typed_codes)) + ")"
            "(?![A-Za-z0-9])"
        )
        if typed_codes
        else None
    )
    problems: list[str] = []
    for path in paths:
        with path.open(errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                where = f"{path.relative_to(support.ROOT)}:{number}"
                for match in secret_re.finditer(line):
                    problems.append(f"{where}: a password/refresh token ({match.group(0)[:3]}…)")
                for match in JWT.finditer(line):
                    if not _is_session_code(match.group(1)):
                        problems.append(f"{where}: a bearer token {match.group(0)[:16]}…")
                for match in CARD.finditer(TRACE_IDS.sub("", line)):
                    digits = re.sub(r"\D", "", match.group(0))
                    if 13 <= len(digits) <= 19 and digits[0] in "3456" and _luhn(digits):
                        problems.append(f"{where}: a card number {digits[:4]}…{digits[-4:]}")
                if TYPED_CODE_FIELD.search(line) or (code_re and code_re.search(line)):
                    problems.append(f"{where}: a typed session code")
                if line.startswith(FORGED_MARKER):
                    problems.append(f"{where}: a line forged by a station's frame")
    return problems


def test_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    log = support.ROOT / ".local" / "reliability" / "scanner-selftest.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMiLCJhdWQiOiJwbHVncGF5In0.c2ln"
    reply = json.dumps([3, "1", {"data": json.dumps({"sessionId": "s", "code": "ACD34F"})}])
    leaked_frame = json.dumps({"msg": f"CP-1 <- {reply}"})
    forged_frame = json.dumps([2, "1", "DataTransfer", {"data": f"hi\n{FORGED_MARKER} ERROR x"}])
    log.write_text(
        f"password demo-password-1\nAuthorization: Bearer {token}\ncard 4242 4242 4242 4242\n"
        "order 1234567890123 ts 2026-11-23T01:02:03.123456\n"
        '{"msg": "GET /x", "trace_id": "ac3412f55ce40c2d9f520a450d8a6eb8", "span_id": '
        '"3336548445851592"}\n'
        # found: a code field (JSON in a JSON string, in a JSON log line), a code of this
        # run in an access log, a forged line
        f"{leaked_frame}\n"
        '127.0.0.1 - "GET /sessions/codes/WXY679 HTTP/1.1" 200\n'
        f"{FORGED_MARKER} ERROR auth_svc.app: admin password reset\n"
        # not found: the same, written safely, and look-alikes
        f"{leaked_frame.replace('ACD34F', '***')}\n"
        '127.0.0.1 - "POST /sessions/codes/lookup HTTP/1.1" 200 {"error_code": "NoError"}\n'
        f"INFO station_gateway.ocpp: CP-1: receive message {forged_frame}\n"
        "session 9f7d2c1e-WXY6 tokenWXY679x\n"
    )
    try:
        problems = scan([log], set(), frozenset({"WXY679"}))
        assert len(problems) == 6, problems
        assert sum("typed session code" in p for p in problems) == 2, problems
        assert sum("forged" in p for p in problems) == 1, problems
    finally:
        log.unlink()


async def test_no_secrets_in_logs(world: support.World) -> None:
    # Put this run's own secrets through the system first: logins, refreshes, a bad password.
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        driver = world.drivers[0]
        await http.post(
            "/auth/token", data={"username": driver.email, "password": "Wrong-pw-4242424242424242"}
        )
        fresh = await support.login(http, driver.email, support.TEST_PASSWORD)
        refreshed = (
            await http.post(
                "/auth/token",
                data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
            )
        ).json()
        await http.get("/auth/me", headers=support.bearer(fresh["access_token"]))
        await http.post(
            "/billing/payment-methods",
            json={"token": "4242424242424242"},
            headers={**support.bearer(driver.token), "Idempotency-Key": "card-number-in-body"},
        )
        # A typed code through the station and the phone's lookup, and a frame with a line
        # break that would forge a log line if frames were written verbatim.
        station = SimulatedStation(
            world.stations[1], support.BASE_URL.replace("http", "ws"), support.STATION_PASSWORD
        )
        await station.connect()
        try:
            issued = await station.request_code(1)
            await station._cp.call(
                call16.DataTransfer(
                    vendor_id="com.example.forger",
                    message_id="note",
                    data=f"hi\n{FORGED_MARKER} ERROR auth_svc.app: admin password reset",
                )
            )
        finally:
            await station.close()
        await http.post(
            "/sessions/codes/lookup",
            json={"code": issued["code"]},
            headers=support.bearer(driver.token),
        )
    extra = {
        t
        for t in (
            fresh.get("refresh_token"),
            refreshed.get("refresh_token"),
            *(d.refresh_token for d in world.drivers),
        )
        if t
    }
    extra.add("Wrong-pw-4242424242424242")
    paths = [p for p in (support.ROOT / ".local").glob("stack*/**/*.log") if p.is_file()]
    paths += [p for p in (support.ROOT / ".local" / "reliability").glob("*.log")]
    assert paths
    problems = scan(paths, extra, frozenset({issued["code"]}))
    print(f"log scan: {len(paths)} files, {len(problems)} findings")
    assert not problems, problems[:30]
