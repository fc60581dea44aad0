"""OCPP 2.1 C25, ad hoc payment by dynamic QR code: the station's time-based code and its check.

Pure (no I/O). The station shows a URL from the template the back office provisioned in its
``WebPaymentsCtrlr``, with a code computed from a shared secret and the current time step; the
landing page checks it here. The code is OCPP's TOTP v1, not RFC 6238: HMAC-SHA256 over the
8-byte big-endian time step (UTC seconds // validity), keyed with the UTF-8 shared secret, the
digest read from an offset (its last byte's low nibble), each byte mapped into base62.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
COMPONENT = "WebPaymentsCtrlr"
# The station's clock and a person's scan take time: the steps either side are accepted too.
ACCEPTED_STEPS = (0, -1, 1)
# The URL path the landing route serves (endpoints.py); the station fills in the variables.
LANDING_PATH = "/stations/{chargingStationId}/evses/{evse}/pay/{totp}"


@dataclass(frozen=True)
class WebPaymentTerms:
    """What the back office provisions in a station's WebPaymentsCtrlr."""

    shared_secret: str
    validity_s: int
    length: int


def time_step(at: datetime, validity_s: int) -> int:
    """The TOTP time step containing ``at`` (whole UTC seconds since the epoch // validity)."""
    return int(at.timestamp()) // validity_s


def totp(shared_secret: str, step: int, length: int) -> str:
    """OCPP TOTP v1 for one time step."""
    digest = hmac.new(
        shared_secret.encode(), step.to_bytes(8, "big", signed=False), hashlib.sha256
    ).digest()
    offset = digest[-1] & 0x0F
    return "".join(BASE62[digest[(offset + i) % len(digest)] % 62] for i in range(length))


def code_is_valid(code: str, terms: WebPaymentTerms, at: datetime) -> bool:
    """True if ``code`` is the station's code for the step at ``at`` or one either side."""
    if len(code) != terms.length or any(c not in BASE62 for c in code):
        return False
    step = time_step(at, terms.validity_s)
    # Every candidate is compared (constant time each), so timing says nothing of which matched.
    matches = [
        hmac.compare_digest(code, totp(terms.shared_secret, step + delta, terms.length))
        for delta in ACCEPTED_STEPS
    ]
    return any(matches)


def new_shared_secret() -> str:
    """A station's shared secret: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def url_template(public_base_url: str) -> str:
    """The URLTemplate a station fills in (variable names are case-insensitive in OCPP)."""
    return public_base_url.rstrip("/") + LANDING_PATH


def names_shared_secret(payload: Mapping[str, Any]) -> bool:
    """Whether an operator's Get/SetVariables names a WebPaymentsCtrlr SharedSecret: the back
    office's secret is neither shown to people nor changed behind its back."""
    items = [*(payload.get("get_variable_data") or ()), *(payload.get("set_variable_data") or ())]
    for item in items:
        if not isinstance(item, Mapping):
            continue
        component = item.get("component") or {}
        variable = item.get("variable") or {}
        if (
            str(component.get("name", "")).lower() == COMPONENT.lower()
            and str(variable.get("name", "")).lower() == "sharedsecret"
        ):
            return True
    return False
