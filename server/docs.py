"""The API viewer at `/docs`, served from the Swagger UI files installed with the server.

FastAPI's default page loads Swagger UI from a CDN, which a server on a closed network cannot reach
(the page stays blank). Here the script and style come from the swagger-ui-bundle package through one
route that serves a fixed list of files, so nothing outside this server is referenced.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

from server.errors import NotFound

ASSET_PATH = "/docs/assets"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
# Only these files are served: the route never joins a caller's text onto a filesystem path.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, its OAuth2 redirect page and its assets to `app` (rules in server.authz)."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PATH}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(ASSET_PATH + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            raise NotFound(f"no such viewer file: {name}")
        body = (SWAGGER_DIR / name).read_bytes()
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=86400"})
