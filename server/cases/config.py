"""Settings of the case workflow: how rights-holder notifications leave the server (SMTP or export)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

SMTP_PASSWORD_ENV = "PARCELGUARD_SMTP_PASSWORD"


def smtp_password() -> str:
    """The mail server password: from the environment only, never from the configuration file."""
    return os.environ.get(SMTP_PASSWORD_ENV, "")


class CasesConfig(BaseModel):
    """[server.cases]: who notifications come from and the mail server that carries them."""

    model_config = ConfigDict(extra="forbid")

    office_name: str = Field(
        "parcelguard", min_length=1, max_length=200, description="the office that signs notifications"
    )
    mail_from: str = Field(
        "parcelguard@localhost", min_length=3, max_length=254, description="sender address of notifications"
    )
    smtp_host: str | None = Field(
        None, description="mail server for notifications; unset: notifications are exported and handed over"
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="mail server port")
    smtp_starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    smtp_username: str | None = Field(
        None, description=f"log in as this user (password from {SMTP_PASSWORD_ENV})"
    )
    smtp_timeout_s: float = Field(10.0, gt=0, le=120, description="give up on the mail server after this")
