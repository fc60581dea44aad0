"""Runs Stripe's stripe-mock (a Go program) for the Stripe adapter's tests.

Looks for ``.cache/bin/stripe-mock`` (or on PATH); if missing, builds it with
``go install github.com/stripe/stripe-mock@latest`` into ``.cache/bin``. Listens on 127.0.0.1
with ephemeral ports. With ``CI`` set, a stripe-mock that cannot be had fails the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN_DIR = ROOT / ".cache" / "bin"
MODULE = "github.com/stripe/stripe-mock@latest"


def _binary() -> str:
    local = BIN_DIR / "stripe-mock"
    if local.exists():
        return str(local)
    found = shutil.which("stripe-mock")
    if found:
        return found
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise RuntimeError("stripe-mock is missing and there is no Go toolchain to build it")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "install", MODULE],
        check=True,
        env={**os.environ, "GOBIN": str(BIN_DIR)},
        capture_output=True,
        timeout=600,
    )
    return str(local)


@contextmanager
def stripe_mock() -> Iterator[str]:
    """Yield the base URL of a running stripe-mock."""
    try:
        binary = _binary()
    except (RuntimeError, subprocess.SubprocessError) as error:
        if os.environ.get("CI"):
            pytest.fail(f"stripe-mock unavailable in CI: {error}", pytrace=False)
        pytest.skip(f"stripe-mock unavailable: {error}")
    process = subprocess.Popen(
        [binary, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            match = re.search(r"Listening for HTTP at address: (\S+)", line)
            if match:
                url = f"http://{match.group(1)}"
        if url is None:
            pytest.fail("stripe-mock did not start", pytrace=False)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
