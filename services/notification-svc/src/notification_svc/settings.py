"""notification-svc settings: ``NOTIFICATION_SVC_*`` variables plus the platform's ``PLUGPAY_*``
(and ``PLUGPAY_SMTP_URL`` / ``PLUGPAY_MAIL_FROM``, shared with the embedded default)."""

from __future__ import annotations

from plugpay_platform.settings import ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from notification_svc.smtp import SmtpTarget


class Settings(ServiceSettings):
    """Everything notification-svc reads from its environment."""

    # The SMTP settings are the platform's names (PLUGPAY_*), shared with `plugpay run`; by
    # field name they can still be passed in code (tests, the embedded composition).
    model_config = SettingsConfigDict(
        env_prefix="NOTIFICATION_SVC_", extra="ignore", populate_by_name=True
    )

    smtp_url: SecretStr | None = Field(
        default=None,
        validation_alias="PLUGPAY_SMTP_URL",
        description="smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)",
    )
    mail_from: str = Field(
        default="Plugpay <no-reply@plugpay.invalid>",
        validation_alias="PLUGPAY_MAIL_FROM",
        max_length=300,
    )
    # The sender loop: how often it looks for due mail, how many it takes at once.
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    batch_size: int = Field(default=20, ge=1, le=500)
    # A claimed mail not confirmed within this is tried again (a sender died mid-send).
    send_lease_s: int = Field(default=120, ge=5, le=3600)
    max_attempts: int = Field(default=12, ge=1, le=100)
    retry_base_s: float = Field(default=2.0, gt=0, le=600)
    retry_max_s: float = Field(default=3600.0, gt=0, le=86_400)
    # Events older than this are replayed history (a new deployment reads the log from the
    # start): they teach contact data but send nothing.
    max_event_age_s: int = Field(default=2 * 24 * 3600, ge=60)

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if text == "" else value

    @model_validator(mode="after")
    def _smtp_in_production(self) -> Settings:
        if self.platform.environment == "production":
            if self.smtp_url is None:
                raise ValueError("production needs PLUGPAY_SMTP_URL")
            if self.platform.mail_link_key is None:
                raise ValueError("production needs PLUGPAY_MAIL_LINK_KEY")
        if self.smtp_url is not None:
            SmtpTarget.parse(self.smtp_url.get_secret_value())  # fail at start, not at send
        return self

    def smtp_target(self) -> SmtpTarget | None:
        return SmtpTarget.parse(self.smtp_url.get_secret_value()) if self.smtp_url else None
