"""billing-svc settings: ``BILLING_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from typing import Literal

from plugpay_platform.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from billing_svc.domain import BIGINT_MAX, MoneyLimits


class Settings(ServiceSettings):
    """Everything billing-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="BILLING_SVC_", extra="ignore")

    processor: Literal["simulated", "stripe"] = "simulated"
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = Field(
        default=None, description="another API address (stripe-mock in tests)"
    )
    stripe_webhook_secret: SecretStr | None = None
    stripe_publishable_key: str | None = Field(
        default=None,
        pattern=r"^pk_(test|live)_[A-Za-z0-9]+$",
        description="Stripe's publishable key (pk_...), given to the pages that load Stripe.js "
        "to take a card; public by design, never the secret key",
    )
    simulated_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the simulated processor's webhook secret; unset: a random one per process "
        "(the embedded mode keeps one per install in its data directory)",
    )

    wallet_hold_cap_minor: int = Field(default=5_000, gt=0, description="most a wallet hold takes")
    card_hold_ac_minor: int = Field(default=5_000, gt=0, description="card pre-auth, AC stations")
    card_hold_dc_minor: int = Field(default=10_000, gt=0, description="card pre-auth, DC stations")
    dc_threshold_w: int = Field(default=22_000, gt=0, description="above this a station is DC")
    start_deadline_s: int = Field(default=180, gt=0)
    wallet_hold_ttl_s: int = Field(default=2 * 86_400, gt=0)
    hold_sweep_interval_s: float = Field(default=30.0, gt=0)
    recovery_after_s: float = Field(
        default=60.0,
        ge=0,
        description="work left between a processor call and its posting "
        "this long is taken up again by the sweeper",
    )

    # Bounds on money a driver moves, in minor units; ``currency_limits`` overrides them per
    # currency (e.g. {"JPY": {"max_wallet_balance_minor": 80000}}), minor units differ.
    min_topup_minor: int = Field(default=100, gt=0, le=BIGINT_MAX)
    max_topup_minor: int = Field(default=50_000, gt=0, le=BIGINT_MAX)
    max_auto_topup_minor: int = Field(default=20_000, gt=0, le=BIGINT_MAX)
    max_wallet_balance_minor: int = Field(default=50_000, gt=0, le=BIGINT_MAX)
    currency_limits: dict[str, dict[str, int]] = Field(default_factory=dict)
    # Card testing: declined payments per account and per client address in a window.
    max_declines: int = Field(default=5, gt=0)
    decline_window_s: int = Field(default=3600, gt=0)

    def money_limits(self, currency: str) -> MoneyLimits:
        values = {
            "min_topup": self.min_topup_minor,
            "max_topup": self.max_topup_minor,
            "max_auto_topup": self.max_auto_topup_minor,
            "max_wallet_balance": self.max_wallet_balance_minor,
        }
        for key, value in self.currency_limits.get(currency, {}).items():
            values[key.removesuffix("_minor")] = value
        return MoneyLimits(**values)

    @model_validator(mode="after")
    def _real_money_in_production(self) -> Settings:
        if self.platform.environment == "production":
            if self.processor == "simulated":
                raise ValueError("production refuses the simulated payment processor")
            if self.stripe_webhook_secret is None:
                raise ValueError("production needs BILLING_SVC_STRIPE_WEBHOOK_SECRET")
            if self.stripe_publishable_key is None:
                # Without it no page can take a card: nobody could pay by card.
                raise ValueError("production needs BILLING_SVC_STRIPE_PUBLISHABLE_KEY")
        for limits in self.currency_limits.values():
            known = set(MoneyLimits.__dataclass_fields__)
            unknown = {k.removesuffix("_minor") for k in limits} - known
            if unknown:
                raise ValueError(f"unknown currency limits {sorted(unknown)}")
        if self.processor == "stripe" and self.stripe_api_key is None:
            raise ValueError("the Stripe processor needs BILLING_SVC_STRIPE_API_KEY")
        return self
