"""The front door's trust: X-Forwarded-For is honoured only from configured addresses."""

from __future__ import annotations

import pytest
from plugpay_platform.settings import PlatformSettings
from pydantic import ValidationError


def test_nobody_is_trusted_by_default() -> None:
    assert PlatformSettings().server_proxy_options() == {"proxy_headers": False}


def test_the_configured_front_door_is_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGPAY_FORWARDED_ALLOW_IPS", " 10.0.0.0/8, 127.0.0.1 ,")
    assert PlatformSettings().server_proxy_options() == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1",
    }


@pytest.mark.parametrize("value", ["*", "ingress.local", "10.0.0.0/33"])
def test_only_addresses_and_networks_are_accepted(value: str) -> None:
    with pytest.raises(ValidationError):
        PlatformSettings(forwarded_allow_ips=value)
