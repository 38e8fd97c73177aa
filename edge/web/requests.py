"""Request bodies of the terminal's API and its one error shape `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TerminalError(ValueError):
    """A request the terminal refuses; carries the HTTP status and a stable code for the error shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ConfirmRequest(BaseModel):
    """What the operator did about a parcel: one touch or one key on the terminal (who: from the session)."""

    model_config = ConfigDict(extra="forbid")

    tracking_id: str = Field(min_length=1, max_length=200, description="Tracking id of the parcel.")
    action: Literal["pulled", "not_found", "open_box"] = Field(description="What the operator did.")
    result: str = Field("", max_length=2000, description="Open-box result (required for open_box).")


class LoginRequest(BaseModel):
    """An operator's id and PIN, typed on the login page."""

    model_config = ConfigDict(extra="forbid")

    operator: str = Field(min_length=1, max_length=64, description="Operator id.")
    pin: str = Field(min_length=1, max_length=64, description="The operator's PIN.")


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
