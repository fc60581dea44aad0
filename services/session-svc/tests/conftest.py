"""session-svc tests: the builders module sits beside this file (importlib mode); the signing
key and token factory the API tests share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from plugpay_events.session_code import generate_signing_key
from plugpay_testing.tokens import TokenFactory

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def signing_key() -> dict[str, Any]:
    return generate_signing_key()


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()
