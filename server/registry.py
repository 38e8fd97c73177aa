"""The real-name registry: sender and manifest import with row validation, and changes served to edges."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Connection, select, update

from server.db import REGISTRY_LOCK, iso, serialise_writers, utcnow
from server.errors import BadInput
from server.idcheck import check_id_number, check_phone, check_usc_code, normalise_phone
from server.links.normalise import normalise_address
from server.privacy import Privacy, mask_id, mask_name, mask_phone
from server.schema import manifests, registry_log, senders

IdType = Literal["resident_id", "passport", "usc_code", "other"]
MAX_ROWS = 200_000


class SenderRow(BaseModel):
    """One sender record as the courier's acceptance system exports it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_type: IdType = Field(description="kind of identity document")
    id_number: str = Field(min_length=1, max_length=64, description="document number (stored only as token)")
    name: str = Field("", max_length=128, description="sender's name (stored masked and encrypted)")
    phone: str = Field("", max_length=32, description="phone (stored only as token, masked and encrypted)")
    address: str = Field("", max_length=400, description="sender's address (stored as token and encrypted)")
    verified: bool = Field(False, description="real-name verification passed")
    verified_at: datetime | None = Field(None, description="when verification happened")
    outlet: str = Field("", max_length=128, description="acceptance outlet")
    courier: str = Field("", max_length=128, description="courier who accepted")
    agreement_customer: bool = Field(False, description="agreement customer (e.g. e-commerce merchant)")
    usc_code: str = Field(
        "", max_length=18, description="unified social credit code of an agreement customer"
    )
    qualification: str = Field("", max_length=64, description="agreement customer qualification status")

    @model_validator(mode="after")
    def _check(self) -> SenderRow:
        problem = check_id_number(self.id_type, self.id_number)
        if problem:
            raise ValueError(f"id_number: {problem}")
        if self.phone and (problem := check_phone(self.phone)):
            raise ValueError(f"phone: {problem}")
        if self.usc_code and (problem := check_usc_code(self.usc_code)):
            raise ValueError(f"usc_code: {problem}")
        if self.agreement_customer and not self.usc_code and self.id_type != "usc_code":
            raise ValueError("usc_code: required for an agreement customer")
        return self


class ManifestRow(BaseModel):
    """One waybill with its sender and declared contents."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{4,64}$", description="waybill number")
    sender_id_type: IdType = Field(description="sender's ID type")
    sender_id_number: str = Field(min_length=1, max_length=64, description="sender's ID number")
    declared_name: str = Field("", max_length=200, description="declared contents")
    declared_category: str = Field("other", max_length=64, description="declared goods category")
    quantity: int = Field(1, ge=0, le=100_000, description="declared number of items")
    inspected_on_receipt: bool = Field(False, description="inspected at acceptance")
    destination: str = Field("", max_length=400, description="recipient address (stored only as token)")

    @field_validator("declared_category")
    @classmethod
    def _category(cls, value: str) -> str:
        return value.lower() or "other"

    @model_validator(mode="after")
    def _check(self) -> ManifestRow:
        problem = check_id_number(self.sender_id_type, self.sender_id_number)
        if problem:
            raise ValueError(f"sender_id_number: {problem}")
        return self


def parse_rows(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """CSV (with a header row) or a JSON list of objects; empty CSV cells count as absent."""
    ctype = content_type.split(";")[0].strip().lower()
    try:
        textual = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput("body must be UTF-8", "encoding") from exc
    if ctype in ("text/csv", "application/csv"):
        reader = csv.DictReader(io.StringIO(textual))
        rows = []
        for row in reader:
            if None in row:
                rows.append({"__error__": "row has more cells than the header"})
                continue
            rows.append({k.strip(): v for k, v in row.items() if k and v is not None and v.strip() != ""})
    elif ctype == "application/json":
        try:
            data = json.loads(textual)
        except json.JSONDecodeError as exc:
            raise BadInput(f"body is not valid JSON: {exc}", "json") from exc
        if not isinstance(data, list):
            raise BadInput("body must be a JSON list of objects", "json")
        rows = [r if isinstance(r, dict) else {"__error__": "row is not an object"} for r in data]
    else:
        raise BadInput("content type must be text/csv or application/json", "content_type")
    if len(rows) > MAX_ROWS:
        raise BadInput(f"at most {MAX_ROWS} rows per import", "too_many_rows")
    return rows


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _log_change(conn: Connection, kind: str, ref: str, at: str) -> None:
    serialise_writers(conn, REGISTRY_LOCK)
    conn.execute(registry_log.insert().values(kind=kind, ref=ref, at=at))


def address_token(privacy: Privacy, address: str) -> str | None:
    """The token of an address's canonical form; none for one with nothing left to compare (it would
    otherwise link every sender whose address is only markers or punctuation)."""
    canonical = normalise_address(address)
    return privacy.token("address", canonical) if canonical else None


def customer_token(privacy: Privacy, row: SenderRow) -> str | None:
    """The credit code token an organisation watch entry of this customer carries (see watchlist)."""
    code = row.usc_code or (row.id_number if row.id_type == "usc_code" else "")
    return privacy.sender_token("usc_code", code) if code else None


def store_sender(conn: Connection, privacy: Privacy, row: SenderRow) -> str:
    token = privacy.sender_token(row.id_type, row.id_number)
    now = iso(utcnow())
    phone = normalise_phone(row.phone) if row.phone else ""
    values: dict[str, Any] = {
        "id_type": row.id_type,
        "id_masked": mask_id(row.id_number),
        "name_masked": mask_name(row.name),
        "phone_token": privacy.token("phone", phone) if phone else None,
        "phone_masked": mask_phone(phone) if phone else None,
        # Normalised first: the same address written two ways is one node of the link graph.
        "address_token": address_token(privacy, row.address),
        "sealed": privacy.seal(
            {"id_number": row.id_number.upper(), "name": row.name, "phone": phone, "address": row.address}
        ),
        "verified": row.verified,
        "verified_at": iso(row.verified_at) if row.verified_at else None,
        "outlet": row.outlet,
        "courier": row.courier,
        "agreement_customer": row.agreement_customer,
        "usc_code": row.usc_code.upper() or None,
        "qualification": row.qualification,
        "updated_at": now,
        "customer_token": customer_token(privacy, row),
    }
    exists = conn.execute(select(senders.c.sender_token).where(senders.c.sender_token == token)).first()
    if exists:
        conn.execute(update(senders).where(senders.c.sender_token == token).values(**values))
    else:
        conn.execute(senders.insert().values(sender_token=token, **values))
    _log_change(conn, "sender", token, now)
    return token


def store_manifest(conn: Connection, privacy: Privacy, row: ManifestRow) -> None:
    now = iso(utcnow())
    values = {
        "sender_token": privacy.sender_token(row.sender_id_type, row.sender_id_number),
        "declared_name": row.declared_name,
        "declared_category": row.declared_category,
        "quantity": row.quantity,
        "inspected_on_receipt": row.inspected_on_receipt,
        "updated_at": now,
        "destination_token": address_token(privacy, row.destination),
    }
    exists = conn.execute(select(manifests.c.waybill).where(manifests.c.waybill == row.waybill)).first()
    if exists:
        conn.execute(update(manifests).where(manifests.c.waybill == row.waybill).values(**values))
    else:
        conn.execute(manifests.insert().values(waybill=row.waybill, **values))
    _log_change(conn, "manifest", row.waybill, now)


def import_rows(
    conn: Connection, privacy: Privacy, kind: Literal["senders", "manifests"], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Validate and store every good row; bad rows are reported by number (1 = first data row) and reason."""
    imported = 0
    rejected: list[dict[str, Any]] = []
    for i, raw in enumerate(rows, start=1):
        if "__error__" in raw:
            rejected.append({"row": i, "reason": raw["__error__"]})
            continue
        try:
            if kind == "senders":
                store_sender(conn, privacy, SenderRow.model_validate(raw))
            else:
                store_manifest(conn, privacy, ManifestRow.model_validate(raw))
        except ValidationError as exc:
            rejected.append({"row": i, "reason": _reason(exc)})
            continue
        imported += 1
    return {"imported": imported, "rejected": rejected}
