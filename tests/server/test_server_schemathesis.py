"""Property-based API test from the OpenAPI document: no 5xx, responses match their documented schemas."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server import admin
from server.app import create_app
from server.db import migrate, normalise_url
from server.settings import generate_key

STATION_PATHS = ("/api/v1/sync", "/api/v1/images/{sha256}", "/api/v1/orders/poll")
OFFICER_ONLY = ("/claim", "/unclaim", "/decision", "/reveal")
EXAMPLES = 12
SETTINGS: dict[str, Any] = {
    "max_examples": EXAMPLES,
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "derandomize": True,
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, dict[str, dict[str, str]]]]:
    from server.evidence.signing import create_signing_key
    from server.settings import EvidenceConfig, LimitsConfig, OrdersConfig, ServerSettings

    pg: tuple[sqlalchemy.Engine, str] | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('schema')) / 'server.db'}"
    else:
        # PostgreSQL enforces types and column widths that SQLite lets through.
        base: str = request.getfixturevalue("pg_url")
        schema_name = "t_" + uuid.uuid4().hex[:12]
        pg = (sqlalchemy.create_engine(normalise_url(base)), schema_name)
        with pg[0].begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema_name}")
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema_name}"
    s = ServerSettings(
        database_url=url,
        secret_key=generate_key(),
        hmac_key=generate_key(),
        encryption_key=generate_key(),
        # Short long polls keep generated cases quick; small limits let 413 paths be reached.
        orders=OrdersConfig(max_poll_seconds=0.05),
        limits=LimitsConfig(max_body_bytes=256 * 1024, max_image_bytes=256 * 1024),
        evidence=EvidenceConfig(signing_key_file=Path(tmp_path_factory.mktemp("keys")) / "evidence.pem"),
    )
    assert s.evidence.signing_key_file is not None
    create_signing_key(s.evidence.signing_key_file)
    try:
        migrate(s.database_url)
        admin.create_user(s, "root", "a long password 123", "admin", ["*"])
        admin.create_user(s, "olga", "a long password 123", "officer", ["*"])
        tokens = {
            "admin": admin.create_api_token(s, "root"),
            "officer": admin.create_api_token(s, "olga"),
            "station": admin.register_station(s, "st-a", "site1", "line1"),
        }
        app = create_app(s)
        yield app, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}
        app.state.services.db.dispose()
    finally:
        if pg is not None:
            with pg[0].begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {pg[1]} CASCADE")
            pg[0].dispose()


def _who(path: str, method: str) -> str:
    if path in STATION_PATHS or (path.startswith("/api/v1/models") and method == "GET"):
        return "station"
    if path.endswith(OFFICER_ONLY):
        return "officer"
    return "admin"


def _runner(op: Any, auth: dict[str, str], statuses: dict[int, int]) -> Callable[[], None]:
    @settings(**SETTINGS)
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=auth, checks=CHECKS)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    return run


def test_api_conforms_to_its_openapi_document(api: tuple[Any, dict[str, dict[str, str]]]) -> None:
    app, headers = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"operation not loadable: {result}")
            continue
        op = result.ok()
        operations += 1
        auth = headers[_who(op.path, op.method.upper())]

        run = _runner(op, auth, statuses)
        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:1500]}")
    assert operations >= 30
    print("schemathesis:", operations, "operations; responses by status", sorted(statuses.items()))
    assert failures == [], "\n\n".join(failures)
    assert sum(n for code, n in statuses.items() if code < 300) >= operations, statuses
