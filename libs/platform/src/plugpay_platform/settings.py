"""Settings from environment variables (pydantic-settings).

Shared settings use the ``PLUGPAY_`` prefix; each service adds its own with its prefix
(``SESSION_SVC_DATABASE_URL``...). A Kafka bootstrap address selects the Kafka bus; without
one the embedded log in PostgreSQL is used.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from plugpay_platform.admission import AdmissionPolicy


class PlatformSettings(BaseSettings):
    """What every service needs to join the platform."""

    model_config = SettingsConfigDict(env_prefix="PLUGPAY_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str | None = None
    # Secured listeners (Strimzi TLS + SCRAM in production); PLAINTEXT on a laptop.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    eventlog_database_url: str | None = Field(
        default=None, description="PostgreSQL URL of the embedded event log (no Kafka)"
    )
    topic_prefix: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    jwt_issuer: str = "plugpay-auth"
    jwt_audience: str = "plugpay"
    jwks_url: str = "http://127.0.0.1:8000/auth/.well-known/jwks.json"
    db_pool_size: int = Field(default=5, ge=1, le=100)
    # Admission control of the phone routes that start new work (plugpay_platform.admission):
    # beyond this many at once a request waits at most admission_max_wait_ms, then gets a 503
    # with Retry-After. 0 turns the limit off.
    admission_max_in_flight: int = Field(default=32, ge=0)
    admission_max_wait_ms: int = Field(default=50, ge=0, le=100)
    admission_max_queue: int = Field(default=64, ge=0)
    admission_retry_after_s: int = Field(default=1, ge=1, le=60)
    # ... and refused at once while this process's event loop lags more than this (CPU bound).
    admission_max_loop_lag_ms: int = Field(default=500, ge=0)
    log_level: str = "INFO"
    log_json: bool = True
    instance_id: str = Field(default_factory=socket.gethostname)
    # The front door's addresses or networks (comma-separated): only a connection from one of
    # them may name the client in X-Forwarded-For. Empty: nobody is trusted, the peer is the
    # client. Never "*": the client could then pick the address every throttle counts.
    forwarded_allow_ips: str = ""
    # Seals mailed links' codes in events for notification-svc (plugpay_events.sealed): only
    # auth-svc and notification-svc are given it. Development falls back to a fixed key.
    mail_link_key: SecretStr | None = None

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_only(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        for host in hosts:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {host!r}") from None
        return ",".join(hosts)

    def admission_policy(self) -> AdmissionPolicy:
        """The admission limits of this process's phone routes."""
        from plugpay_platform.admission import AdmissionPolicy

        return AdmissionPolicy(
            max_in_flight=self.admission_max_in_flight,
            max_wait_ms=self.admission_max_wait_ms,
            max_queue=self.admission_max_queue,
            retry_after_s=self.admission_retry_after_s,
            max_loop_lag_ms=self.admission_max_loop_lag_ms,
        )

    def server_proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy-header options for this front door (``uvicorn.run(**...)``)."""
        if not self.forwarded_allow_ips:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": self.forwarded_allow_ips}

    def link_key(self) -> bytes:
        """The key sealing mailed links' codes; production must configure its own."""
        from plugpay_events.sealed import DEVELOPMENT_KEY, decode_key

        if self.mail_link_key is not None:
            return decode_key(self.mail_link_key.get_secret_value())
        if self.environment == "production":
            raise ValueError("production needs PLUGPAY_MAIL_LINK_KEY")
        return DEVELOPMENT_KEY

    def kafka_client_options(self) -> dict[str, Any]:
        """aiokafka connection options for the configured listener."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "SCRAM-SHA-512"
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    @model_validator(mode="after")
    def _bus_configured(self) -> PlatformSettings:
        if self.environment == "production" and not self.kafka_bootstrap:
            raise ValueError("production needs PLUGPAY_KAFKA_BOOTSTRAP")
        return self


class ServiceSettings(BaseSettings):
    """Base of a service's settings: its own database plus the platform's."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: SecretStr
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    @property
    def eventlog_url(self) -> str:
        """The embedded log lives in its own database, or in the service's when not given."""
        return self.platform.eventlog_database_url or self.database_url.get_secret_value()
