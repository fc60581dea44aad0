"""Settings from environment variables (pydantic-settings).

Shared settings use the ``PLUGPAY_`` prefix; each service adds its own with its prefix
(``SESSION_SVC_DATABASE_URL``...). A Kafka bootstrap address selects the Kafka bus; without
one the embedded log in PostgreSQL is used.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """What every service needs to join the platform."""

    model_config = SettingsConfigDict(env_prefix="PLUGPAY_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str | None = None
    eventlog_database_url: str | None = Field(
        default=None, description="PostgreSQL URL of the embedded event log (no Kafka)"
    )
    topic_prefix: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    jwt_issuer: str = "plugpay-auth"
    jwt_audience: str = "plugpay"
    jwks_url: str = "http://127.0.0.1:8000/auth/.well-known/jwks.json"
    db_pool_size: int = Field(default=5, ge=1, le=100)
    log_level: str = "INFO"
    log_json: bool = True
    instance_id: str = Field(default_factory=socket.gethostname)

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
