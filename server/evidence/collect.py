"""Gather one bundle's files from the database: items, events as stored, images, sender, custody, audit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from server.accounts import Principal
from server.db import iso
from server.errors import BadInput, TooLarge
from server.privacy import Privacy
from server.reviews import audit_targets, evidence
from server.schema import audit_log, events, images, model_artifacts, senders
from server.scope import audit_filter

FORMAT = "parcelguard-evidence/1"
MAX_ITEMS = 200
IMAGE_SUFFIX = {"image/jpeg": "jpg", "image/png": "png", "image/bmp": "bmp", "image/tiff": "tif"}
# Review actions whose audit entries are custody steps: the officer took or changed hold of the goods.
CUSTODY_ACTIONS = {"review_claim", "review_open_inspection", "review_detain", "review_seize", "review_refer"}
CUSTODY_FIELDS = ("storage_location", "seizure_record", "legal_basis", "authority", "case_reference", "note")


@dataclass(frozen=True)
class CaseRecord:
    """A case around the items: its summary, its own custody steps and the audit target of its entries."""

    case_id: str
    summary: dict[str, Any]
    custody: list[dict[str, Any]] = field(default_factory=list)
    audit_target: str = ""
    images: list[str] = field(default_factory=list)  # sha256 of the case's own photos (disposal)


@dataclass(frozen=True)
class BundleRequest:
    """What to put in one bundle, by whom, and why the full sender record is in it (if it is)."""

    item_ids: list[int]
    case: CaseRecord | None = None
    reveal_reason: str = ""
    extra_targets: list[str] = field(default_factory=list)


@dataclass
class Collected:
    """The files of a bundle, the sites they concern and the senders whose full record they hold."""

    files: dict[str, bytes]
    sites: list[str]
    revealed: list[str]
    items: list[dict[str, Any]]


def dumps(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str) + "\n").encode()


def check_request(req: BundleRequest) -> None:
    if not req.item_ids:
        raise BadInput("a bundle needs at least one review item", "items")
    if len(req.item_ids) > MAX_ITEMS:
        raise BadInput(f"at most {MAX_ITEMS} review items in one bundle", "items")
    if len(set(req.item_ids)) != len(req.item_ids):
        raise BadInput("a review item is named twice", "items")
    reason = req.reveal_reason.strip()
    if req.reveal_reason and len(reason) < 10:
        raise BadInput(
            "the reason to include full sender records must say why (at least 10 characters)", "reason"
        )


def _stored_events(conn: Connection, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of the parcel at its station, column by column as stored (payload text untouched)."""
    rows = conn.execute(
        select(events)
        .where(
            or_(
                events.c.key == item["event_key"],
                (events.c.station_id == item["station_id"]) & (events.c.tracking_id == item["tracking_id"]),
            )
        )
        .order_by(events.c.boot_id, events.c.seq)
    ).mappings()
    return [dict(r) for r in rows]


def _models(conn: Connection, versions: set[str]) -> list[dict[str, Any]]:
    if not versions:
        return []
    rows = conn.execute(
        select(
            model_artifacts.c.name,
            model_artifacts.c.kind,
            model_artifacts.c.version,
            model_artifacts.c.sha256,
            model_artifacts.c.mode,
            model_artifacts.c.created_at,
        )
        .where(model_artifacts.c.version.in_(sorted(versions)))
        .order_by(model_artifacts.c.name, model_artifacts.c.version)
    ).mappings()
    return [dict(r) for r in rows]


def _add_image(conn: Connection, files: dict[str, bytes], stem: str, sha256: str, max_bytes: int) -> bool:
    """The image's original bytes under `stem` plus its type's suffix; False when never received."""
    size = conn.execute(select(images.c.size).where(images.c.sha256 == sha256)).scalar()
    if size is None:
        return False
    # Checked before the bytes are read: the whole bundle is built in memory.
    held = sum(len(v) for v in files.values())
    if held + int(size) > max_bytes:
        raise TooLarge(
            f"the bundle would exceed evidence.max_bundle_mb ({max_bytes >> 20} MB); bundle fewer items",
            "bundle_too_large",
        )
    row = conn.execute(select(images.c.content_type, images.c.data).where(images.c.sha256 == sha256)).first()
    if row is None:
        return False
    files[f"{stem}.{IMAGE_SUFFIX.get(row.content_type, 'bin')}"] = bytes(row.data)
    return True


# Per stored event type: the custody step it is, and which of its payload fields say what happened.
EVENT_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "parcel": ("screened", ("decision", "reasons", "divert")),
    "divert_outcome": ("divert", ("outcome", "chute", "detail")),
    "operator": ("", ("result",)),  # the step is the operator's action: pulled, not_found, open_box
    "order_status": ("order", ("order_id", "state")),
}


def _custody_from_events(item: dict[str, Any], stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    where = {"site_id": item["site_id"], "line_id": item["line_id"], "station_id": item["station_id"]}
    steps: list[dict[str, Any]] = []
    for ev in stored:
        if ev["type"] not in EVENT_STEPS:
            continue
        name, keys = EVENT_STEPS[ev["type"]]
        body = json.loads(ev["payload"])
        if ev["type"] == "operator":
            who = body.get("operator") or "operator (unnamed)"
        else:
            who = f"{'sorter at' if ev['type'] == 'divert_outcome' else 'station'} {ev['station_id']}"
        steps.append(
            {
                "at": ev["at"],
                "step": name or body.get("action"),
                "who": who,
                "where": where,
                "source": f"event {ev['key']}",
                "detail": {k: body.get(k) for k in keys},
            }
        )
    return steps


def _custody_from_audit(item: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = []
    for e in entries:
        if e["target"] != f"review:{item['id']}" or e["action"] not in CUSTODY_ACTIONS:
            continue
        fields = json.loads(e["detail"]).get("fields") or {}
        steps.append(
            {
                "at": e["at"],
                "step": e["action"].removeprefix("review_"),
                "who": e["actor"],
                "where": {
                    "site_id": item["site_id"],
                    **{k: fields[k] for k in CUSTODY_FIELDS if fields.get(k)},
                },
                "source": f"audit entry {e['n']}",
                "detail": {},
            }
        )
    return steps


def _audit(conn: Connection, who: Principal, targets: list[str]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(audit_log)
        .where(audit_log.c.target.in_(sorted(set(targets))), audit_filter(who))
        .order_by(audit_log.c.n)
    ).mappings()
    # Every chain field, so the entries can be held against the server's chain later.
    return [
        {k: r[k] for k in ("n", "at", "actor", "action", "target", "detail", "prev_hash", "hash")}
        for r in rows
    ]


def collect_bundle(
    conn: Connection,
    who: Principal,
    req: BundleRequest,
    privacy: Privacy,
    regions: dict[str, list[str]],
    now: datetime,
    key_sha256: str,
    max_bytes: int,
) -> Collected:
    """Every file of the bundle; an item beyond the caller's sites is NotFound, as everywhere else."""
    check_request(req)
    files: dict[str, bytes] = {}
    items = [evidence(conn, item_id, who, regions) for item_id in req.item_ids]
    targets = list(req.extra_targets)
    stored_by_item: dict[int, list[dict[str, Any]]] = {}
    missing_images: list[dict[str, Any]] = []
    for item in items:
        base = f"items/{item['id']}"
        stored = _stored_events(conn, item)
        stored_by_item[item["id"]] = stored
        targets += audit_targets(conn, item)
        decision_keys = (
            "id",
            "event_key",
            "station_id",
            "site_id",
            "line_id",
            "waybill",
            "tracking_id",
            "decision",
            "reasons",
            "risk",
            "category",
            "state",
            "created_at",
            "due_at",
            "outcome",
            "outcome_fields",
            "decided_by",
            "decided_at",
            "statutory_due_at",
            "divert",
            "codes",
        )
        files[f"{base}/decision.json"] = dumps({k: item.get(k) for k in decision_keys})
        files[f"{base}/events.json"] = dumps(stored)
        versions = {c["model_version"] for c in item["classifications"] if c.get("model_version")}
        files[f"{base}/classifications.json"] = dumps(
            {"classifications": item["classifications"], "models": _models(conn, versions)}
        )
        files[f"{base}/declared.json"] = dumps(item["manifest"])
        for img in item["images"]:
            if not _add_image(
                conn, files, f"{base}/images/{img['kind']}-{img['sha256']}", img["sha256"], max_bytes
            ):
                missing_images.append({"item": item["id"], "sha256": img["sha256"], "kind": img.get("kind")})
    revealed: list[str] = []
    for token in sorted({i["sender_token"] for i in items if i["sender_token"]}):
        masked = next(i["sender"] for i in items if i["sender_token"] == token)
        files[f"senders/{token}.masked.json"] = dumps(masked)
        if req.reveal_reason and masked is not None:
            sealed = conn.execute(
                select(senders.c.sealed).where(senders.c.sender_token == token)
            ).scalar_one()
            files[f"senders/{token}.full.json"] = dumps({**masked, **privacy.unseal(sealed)})
            revealed.append(token)
    if req.case is not None:
        files["case.json"] = dumps(req.case.summary)
        if req.case.audit_target:
            targets.append(req.case.audit_target)
        for sha in req.case.images:
            if not _add_image(conn, files, f"case/images/photo-{sha}", sha, max_bytes):
                missing_images.append({"item": None, "sha256": sha, "kind": "case photo"})
    entries = _audit(conn, who, targets)
    custody: list[dict[str, Any]] = []
    for item in items:
        for step in _custody_from_events(item, stored_by_item[item["id"]]) + _custody_from_audit(
            item, entries
        ):
            custody.append({"item": item["id"], "waybill": item["waybill"], **step})
    if req.case is not None:
        custody += [{"item": None, "waybill": None, **s} for s in req.case.custody]
        waybills = {i["id"]: i["waybill"] for i in items}
        for step in custody:
            step["waybill"] = waybills.get(step["item"], step["waybill"])
    custody.sort(key=lambda s: (s["at"], s["item"] or 0))
    files["custody.json"] = dumps(custody)
    files["audit.json"] = dumps(entries)
    sites = sorted({i["site_id"] for i in items})
    files["bundle.json"] = dumps(
        {
            "format": FORMAT,
            "created_at": iso(now),
            "created_by": who.name,
            "case_id": req.case.case_id if req.case else None,
            "items": [i["id"] for i in items],
            "waybills": [i["waybill"] for i in items],
            "sites": sites,
            "signing_key_sha256": key_sha256,
            "full_sender_records": revealed,
            "full_sender_records_reason": req.reveal_reason.strip() if revealed else None,
            "images_not_received": missing_images,
        }
    )
    return Collected(files, sites, revealed, items)
