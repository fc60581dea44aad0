"""pricing-svc settings: ``PRICING_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything pricing-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PRICING_SVC_", extra="ignore")

    quote_max_age_s: int = Field(
        default=60, ge=0, description="Cache-Control max-age of public price quotes"
    )
    directory_max_age_s: int = Field(
        default=10,
        ge=0,
        description="Cache-Control max-age of the public station directory (live availability)",
    )
