"""pricing-svc settings: ``PRICING_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything pricing-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PRICING_SVC_", extra="ignore")
