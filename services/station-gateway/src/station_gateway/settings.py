"""station-gateway settings: ``STATION_GATEWAY_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from station_gateway.domain import Simulation


class Settings(ServiceSettings):
    """Everything station-gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="STATION_GATEWAY_", extra="ignore")

    code_signing_key: SecretStr | None = Field(
        default=None,
        description="private JWK (JSON) signing session codes; generated and kept in the "
        "gateway's database when unset outside production",
    )
    code_lifetime_s: int = Field(default=300, gt=0)
    heartbeat_interval_s: int = Field(default=60, gt=0, description="sent in BootNotification")
    missed_heartbeats: float = Field(
        default=2.5, gt=1, description="a station silent for interval x this is offline"
    )
    presence_sweep_s: float = Field(default=5.0, gt=0)
    instance_heartbeat_s: float = Field(default=5.0, gt=0)
    limit_check_s: float = Field(default=5.0, gt=0, description="time/cost limit checks")
    ocpp_response_timeout_s: float = Field(default=30.0, gt=0)
    reconnect_settle_s: float = Field(
        default=10.0,
        ge=0,
        description="a stop asked for while the station was away is sent this long after it "
        "reconnects, once it has had the chance to report its own stop (then it is not sent)",
    )
    informational_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="display messages and cost updates are given up (quietly) after this long, "
        "so a station that never answers them holds a start, a stop or a new code at most this",
    )
    start_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="give up an authorised session the station has not started this long after "
        "authorisation (billing's start_deadline applies when sooner or when unset)",
    )
    lost_transaction_grace_s: float = Field(
        default=600.0,
        gt=0,
        description="a charging session whose connector the station has reported Available for "
        "this long, with no reading or stop since, is completed from its last reading",
    )
    unreachable_transaction_s: float = Field(
        default=86_400.0,
        gt=0,
        description="a charging session whose station has not been seen for this long is "
        "completed from its last reading (a stop the station sends later changes nothing)",
    )
    web_payment_validity_s: int = Field(
        default=60,
        ge=6,
        le=3600,
        description="OCPP 2.1 C25: how long a station's dynamic payment code is valid (its TOTP "
        "time step); the step either side is accepted too",
    )
    web_payment_code_length: int = Field(default=10, ge=6, le=32)
    web_payment_timeout_s: int = Field(
        default=300,
        gt=0,
        description="a payer who opened a station's dynamic code holds its connector this long "
        "(NotifyWebPaymentStarted): no other code is issued there meanwhile",
    )
    max_message_bytes: int = Field(default=65_536, gt=0)
    credential_cache_s: float = Field(
        default=86_400.0,
        ge=0,
        le=7 * 86_400,
        description="a verified station password is remembered in memory (keyed digest) this "
        "long while its stored hash is unchanged, so a fleet reconnecting after an outage signs "
        "in without an argon2 check each; a changed or revoked credential applies at once",
    )
    max_handshakes_in_flight: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="stations one process brings in at once (handshake until the first message "
        "is answered); beyond, 503 with a Retry-After at the station's own turn, paced at the "
        "rate stations get in (a reconnect storm is told once and comes back spread out)",
    )
    simulated_meter_speedup: float = Field(
        default=1.0,
        ge=1.0,
        le=10_000.0,
        description="test and demo stacks only: simulated stations meter this many times "
        "faster than real time, so the plausibility judgement's power bound is this much "
        "higher; refused in production, where a station's meter is evidence",
    )
    simulated_station_clocks: bool = Field(
        default=False,
        description="test stacks only: simulated stations report times on a simulated calendar "
        "of their own (the analytics suite's month), so their timestamps are not judged against "
        "our clock (their energy still is); refused in production",
    )
    consume_events: bool = Field(
        default=True,
        description="run the event consumers; socket-only replicas may turn it off",
    )

    @model_validator(mode="after")
    def _physical_in_production(self) -> Settings:
        if self.platform.environment == "production" and self.simulation != Simulation():
            raise ValueError(
                "STATION_GATEWAY_SIMULATED_METER_SPEEDUP and _SIMULATED_STATION_CLOCKS are for "
                "test stacks only"
            )
        return self

    @property
    def simulation(self) -> Simulation:
        return Simulation(self.simulated_meter_speedup, self.simulated_station_clocks)
