"""Schemathesis against every service's OpenAPI (``{prefix}/openapi.json``) on the isolated
stack: no 5xx, responses match their schemas. Each service is fuzzed with the token of the role
it mostly serves (so requests get past authentication); bounded examples and time."""

from __future__ import annotations

import asyncio
import json

import pytest
import support

pytestmark = pytest.mark.infra
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def _run(service: str, token: str, *, examples: int, max_time: int) -> tuple[int, str]:
    port, _db, prefix = support.SERVICES[service]
    report = support.ROOT / ".local" / "reliability" / f"schemathesis-{service}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        str(support.ROOT / ".venv" / "bin" / "schemathesis"),
        "run",
        f"http://127.0.0.1:{port}{prefix}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--max-time",
        str(max_time),
        "--phases",
        "examples,fuzzing",
        "--header",
        f"Authorization: Bearer {token}",
        # rotating the token signing key would change the world under the other tests
        "--exclude-path-regex",
        "signing-keys/rotate",
        "--request-timeout",
        "10",
        "--seed",
        "14",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    report.write_text(
        json.dumps({"service": service, "exit": proc.returncode, "output": text[-20000:]})
    )
    return proc.returncode or 0, text


async def test_openapi_fuzzing(world: support.World, long_run: bool) -> None:
    examples, max_time = (100, 400) if long_run else (5, 30)
    roles = {
        "auth-svc": world.admin_token,
        "station-gateway": world.org_a.token,
        "session-svc": world.drivers[0].token,
        "pricing-svc": world.org_a.token,
        "billing-svc": world.drivers[0].token,
        "notification-svc": world.drivers[0].token,
    }
    results = await asyncio.gather(
        *(_run(s, t, examples=examples, max_time=max_time) for s, t in roles.items())
    )
    failures = []
    for service, (code, text) in zip(roles, results, strict=True):
        summary = [ln for ln in text.splitlines() if "generated" in ln or "passed" in ln]
        print(service, code, summary[-1:] if summary else text[-300:])
        if code != 0:
            failures.append(f"{service}:\n{text[-6000:]}")
    assert not failures, "\n\n".join(failures)
