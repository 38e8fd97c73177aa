"""The X-ray viewer's feed: a stored X-ray as grey samples at full depth, for the officers of its site."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlalchemy import select

from scanner_drivers.image_gate import ImageRefused
from server.accounts import Principal
from server.deps import get_services
from server.schema import images
from server.scope import image_visible
from server.web.common import PageDenied, error_page, need_user
from server.web.xray_pixels import grey_pixels

router = APIRouter()
PIXELS_URL = "/desk/images/{sha256}/pixels"


@router.get(PIXELS_URL)
def xray_pixels(request: Request, sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]) -> Response:
    """Little-endian samples, row by row; size and depth in the X-Image-* headers."""
    try:
        who = need_user(request)
        if not isinstance(who, Principal):
            return who
        svc = get_services(request)
        with svc.db.read() as conn:
            # The same rule as the image itself: officers of a site whose events name it.
            visible = image_visible(conn, who, sha256)
            row = (
                conn.execute(select(images.c.data).where(images.c.sha256 == sha256)).first()
                if visible
                else None
            )
        if row is None:
            raise PageDenied(404, f"no image {sha256[:12]}")
        try:
            pixels = grey_pixels(bytes(row.data))
        except ImageRefused as exc:
            raise PageDenied(422, f"image {sha256[:12]} cannot be shown: {exc}") from exc
    except PageDenied as exc:
        return error_page(request, exc.status, exc.message)
    return Response(
        pixels.data,
        media_type="application/octet-stream",
        headers={
            "X-Image-Width": str(pixels.width),
            "X-Image-Height": str(pixels.height),
            "X-Image-Bits": str(pixels.bits),
            # The material colour thresholds of this server's X-ray machines ([server.xray]).
            "X-Material-Organic-Below": str(svc.settings.xray.organic_below),
            "X-Material-Metal-Above": str(svc.settings.xray.metal_above),
            # Content-addressed: the bytes behind a digest never change; private, being evidence.
            "Cache-Control": "private, max-age=86400",
        },
    )
