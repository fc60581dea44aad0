"""station-gateway settings: ``STATION_GATEWAY_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything station-gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="STATION_GATEWAY_", extra="ignore")
