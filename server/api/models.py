"""Model publishing: artefacts (model, head, gallery) with sha256 for edges, and the counterfeit gallery."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from starlette.concurrency import run_in_threadpool

from server.accounts import Principal
from server.api.responses import Gallery, ModelArtefact
from server.audit import append_audit
from server.db import iso, utcnow
from server.deps import ServicesDep, require
from server.errors import BadInput, Conflict, NotFound, TooLarge
from server.json_depth import nests_deeper_than
from server.schema import gallery, model_artifacts

router = APIRouter(prefix="/api/v1/models", tags=["models"])

Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require("station", "admin", "officer"))]
# Names and versions become folder names on every station: they start with a letter or digit and
# dots only separate runs of other characters, so ".", ".." and "a..b" are refused.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_+-]*(?:\.[A-Za-z0-9_+-]+)*$"
Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="artefact name")]
Version = Annotated[str, Path(pattern=VERSION_PATTERN, max_length=64, description="artefact version")]
BLOB_URL = "/api/v1/models/{name}/{version}/blob"
ARTEFACT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _listing(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "version": row.version,
        "sha256": row.sha256,
        "size": int(row.size),
        "mode": row.mode,
        "manifest": json.loads(row.manifest),
        "published_by": row.published_by,
        "created_at": row.created_at,
        "url": BLOB_URL.format(name=row.name, version=row.version),
    }


@router.put(
    "/{name}/{version}",
    status_code=201,
    response_model=ModelArtefact,
    openapi_extra=ARTEFACT_BODY,
    summary="Publish an artefact",
)
async def put_artefact(
    name: Name,
    version: Version,
    request: Request,
    who: Admin,
    svc: ServicesDep,
    sha256: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$", description="sha256 of the body")],
    kind: Annotated[Literal["model", "head", "gallery"], Query(description="what the artefact is")] = "model",
    mode: Annotated[
        Literal["active", "shadow"], Query(description="edges switch over or run it in shadow")
    ] = "active",
    manifest: Annotated[str, Query(max_length=8000, description="the artefact's manifest as JSON")] = "{}",
) -> dict[str, Any]:
    data = await request.body()
    if len(data) > svc.settings.limits.max_image_bytes:
        raise TooLarge(f"artefact over {svc.settings.limits.max_image_bytes} bytes")
    if not data:
        raise BadInput("artefact body is empty", "empty")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BadInput("body does not hash to the given sha256", "hash_mismatch")
    if nests_deeper_than(manifest.encode(), svc.settings.limits.max_json_depth):
        raise BadInput("manifest is nested too deep", "too_deep")
    try:
        manifest_obj = json.loads(manifest)
    except json.JSONDecodeError as exc:
        raise BadInput(f"manifest is not JSON: {exc}", "manifest") from exc
    if not isinstance(manifest_obj, dict):
        raise BadInput("manifest must be a JSON object", "manifest")

    def store() -> dict[str, Any]:
        with svc.db.write() as conn:
            taken = conn.execute(
                select(model_artifacts.c.id).where(
                    model_artifacts.c.name == name, model_artifacts.c.version == version
                )
            ).first()
            if taken:
                raise Conflict(f"{name} {version} is already published; publish a new version", "exists")
            conn.execute(
                model_artifacts.insert().values(
                    name=name,
                    kind=kind,
                    version=version,
                    sha256=sha256,
                    size=len(data),
                    data=data,
                    mode=mode,
                    manifest=json.dumps(manifest_obj, sort_keys=True),
                    published_by=who.name,
                    created_at=iso(utcnow()),
                )
            )
            append_audit(conn, svc.secret, who.name, "model_publish", f"{name}:{version}", {"sha256": sha256})
            row = conn.execute(
                select(model_artifacts).where(
                    model_artifacts.c.name == name, model_artifacts.c.version == version
                )
            ).one()
            return _listing(row)

    return await run_in_threadpool(store)


class ModeRequest(BaseModel):
    """Switch a published artefact between shadow and active."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["active", "shadow"] = Field(description="new mode")


@router.post(
    "/{name}/{version}/mode",
    response_model=ModelArtefact,
    summary="Switch an artefact between shadow and active",
)
def set_mode(name: Name, version: Version, body: ModeRequest, who: Admin, svc: ServicesDep) -> dict[str, Any]:
    with svc.db.write() as conn:
        where = (model_artifacts.c.name == name) & (model_artifacts.c.version == version)
        if conn.execute(update(model_artifacts).where(where).values(mode=body.mode)).rowcount != 1:
            raise NotFound(f"no artefact {name} {version}")
        append_audit(conn, svc.secret, who.name, "model_mode", f"{name}:{version}", {"mode": body.mode})
        return _listing(conn.execute(select(model_artifacts).where(where)).one())


@router.get(
    "",
    response_model=list[ModelArtefact],
    summary="The newest version of each artefact per mode (what edges should run)",
)
def list_artefacts(who: Reader, svc: ServicesDep) -> list[dict[str, Any]]:
    newest = (
        select(func.max(model_artifacts.c.id))
        .group_by(model_artifacts.c.name, model_artifacts.c.mode)
        .scalar_subquery()
    )
    cols = [c for c in model_artifacts.c if c.name != "data"]
    with svc.db.read() as conn:
        rows = conn.execute(
            select(*cols).where(model_artifacts.c.id.in_(newest)).order_by(model_artifacts.c.name)
        ).fetchall()
    return [_listing(r) for r in rows]


@router.get(
    "/gallery", response_model=Gallery, summary="Counterfeit reference gallery: image references with labels"
)
def list_gallery(
    who: Reader,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    with svc.db.read() as conn:
        rows = conn.execute(
            select(gallery).order_by(gallery.c.created_at, gallery.c.ref_id).limit(limit).offset(offset)
        )
        refs = [
            {
                "ref_id": r.ref_id,
                "image_sha256": r.image_sha256,
                "label": r.label,
                "category": r.category,
                "kind": r.kind,
                "image_url": f"/api/v1/images/{r.image_sha256}",
                "created_at": r.created_at,
            }
            for r in rows
        ]
        total = conn.execute(select(func.count()).select_from(gallery)).scalar_one()
    digest = hashlib.sha256(json.dumps([(r["ref_id"], r["image_sha256"]) for r in refs]).encode()).hexdigest()
    return {"total": int(total), "refs": refs, "digest": digest}


@router.get(
    "/{name}/{version}/blob",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Download an artefact (verify its sha256 before use)",
)
def get_blob(name: Name, version: Version, who: Reader, svc: ServicesDep) -> Response:
    with svc.db.read() as conn:
        row = conn.execute(
            select(model_artifacts.c.data, model_artifacts.c.sha256).where(
                model_artifacts.c.name == name, model_artifacts.c.version == version
            )
        ).first()
    if row is None:
        raise NotFound(f"no artefact {name} {version}")
    return Response(
        bytes(row.data), media_type="application/octet-stream", headers={"X-Content-SHA256": row.sha256}
    )
