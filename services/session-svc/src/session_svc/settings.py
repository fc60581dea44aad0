"""session-svc settings: ``SESSION_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from plugpay_platform.settings import ServiceSettings
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything session-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="SESSION_SVC_", extra="ignore")

    code_verification_jwks: dict[str, Any] = Field(
        default_factory=lambda: {"keys": []},
        description="JSON JWKS of the gateway's public code-signing keys (several during rotation)",
    )
    code_tolerance_s: float = Field(default=300.0, gt=0, description="how old a code may be")
    clock_skew_s: float = Field(default=30.0, ge=0, description="stations' clocks drift")
    start_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="abandon an authorised session not started this long after authorisation "
        "(billing's start_deadline applies when sooner or when unset)",
    )
    start_backstop_s: float = Field(
        default=120.0,
        ge=0,
        description="the start deadline is station-gateway's (it answers a late start Invalid "
        "under the connector lock): session-svc abandons an unstarted session only this long "
        "after it, a backstop for a gateway that never decided",
    )
    timer_interval_s: float = Field(default=1.0, gt=0)
    typed_lookups_per_user: int = Field(default=10, ge=1)
    typed_lookups_per_ip: int = Field(default=30, ge=1)
    typed_lookup_window_s: int = Field(default=60, ge=1)
    typed_code_wait_s: float = Field(
        default=3.0,
        ge=0,
        description="how long a typed code not yet in the store is waited for (its "
        "SessionCodeIssued on its way) before it is refused as unknown",
    )
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # Admission control (docs/performance.md): new scans are refused with 503 busy while at
    # least scan_backlog_late scans of the last minute have waited longer than
    # scan_backlog_after_s for their authorisation (pricing and billing behind). 0: off.
    scan_backlog_late: int = Field(default=3, ge=0)
    scan_backlog_after_s: float = Field(default=1.0, gt=0)
    scan_backlog_interval_s: float = Field(default=0.25, gt=0)
    # Guests (no account) start card pre-authorisations: scans per station and per address in a
    # window, so a visible QR code cannot be turned into a card-testing machine.
    guest_scans_per_station: int = Field(default=10, ge=1)
    guest_scans_per_ip: int = Field(default=5, ge=1)
    guest_window_s: int = Field(default=600, ge=1)

    @field_validator("code_verification_jwks", mode="before")
    @classmethod
    def _parse_jwks(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    @property
    def code_tolerance(self) -> timedelta:
        return timedelta(seconds=self.code_tolerance_s)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_s)

    @property
    def start_backstop(self) -> timedelta:
        return timedelta(seconds=self.start_backstop_s)

    @property
    def start_timeout(self) -> timedelta | None:
        return timedelta(seconds=self.start_timeout_s) if self.start_timeout_s else None
