"""auth-svc settings: ``AUTH_SVC_*`` variables plus the platform's ``PLUGPAY_*``."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Everything auth-svc reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTH_SVC_", extra="ignore")

    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # A guest's token lives as long as one charging session may (no refresh token): it can only
    # pay for and follow the session of the code it was issued for.
    guest_token_ttl_s: int = Field(default=12 * 3600, ge=300, le=24 * 3600)
    guest_tokens_free_per_address: int = Field(default=20, ge=1, le=1_000_000)
    email_verification_ttl_s: int = 24 * 3600
    group_invitation_ttl_s: int = 7 * 24 * 3600
    # The first admin, created at start-up when no user has this email yet.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    # Throttles (docs in the README): failures allowed before the waits begin. Test stacks that
    # drive many logins or registrations from one address raise them; production keeps these.
    login_free_failures_per_account_and_address: int = Field(default=5, ge=1, le=10_000)
    login_free_failures_per_account: int = Field(default=20, ge=1, le=100_000)
    login_free_failures_per_address: int = Field(default=50, ge=1, le=1_000_000)
    registrations_free_per_address: int = Field(default=10, ge=1, le=1_000_000)
    password_reset_ttl_s: int = Field(default=30 * 60, ge=60, le=24 * 3600)
    # The demo accounts, stations and OCPP password (seed.py); never in production.
    seed_demo: bool = False

    @model_validator(mode="after")
    def _no_demo_in_production(self) -> Settings:
        if self.seed_demo and self.platform.environment == "production":
            raise ValueError("AUTH_SVC_SEED_DEMO is not allowed in production")
        if self.platform.environment == "production" and self.platform.mail_link_key is None:
            raise ValueError("production needs PLUGPAY_MAIL_LINK_KEY (mailed links are sealed)")
        return self
