"""billing-svc settings: ``BILLING_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything billing-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="BILLING_SVC_", extra="ignore")
