"""The login limit with real threads on both engines: of N parallel guesses, at most the limit get checked."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from server import admin
from server.app import build_services
from server.errors import NotAuthenticated, RateLimited
from server.schema import audit_log
from server.sessions import login
from tests.server.conftest import make_settings

GUESSES = 24
LIMIT = 3


def _race(attempt: Callable[[int], None], n: int) -> Counter[str]:
    """Run `attempt(i)` in n threads released together; count how each ended."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            attempt(i)
            result = "ok"
        except NotAuthenticated:
            result = "checked"
        except RateLimited:
            result = "limited"
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return outcomes


@pytest.mark.parametrize("spread", ["one_address", "many_addresses", "many_users"])
def test_parallel_wrong_guesses_check_at_most_the_limit(db_url: str, spread: str) -> None:
    settings = make_settings(db_url, auth={"login_max_failures": LIMIT})
    for name in ("sue", *(f"u{i}" for i in range(GUESSES))):
        admin.create_user(settings, name, "a long password 123", "supervisor", ["site1"])
    svc = build_services(settings)

    def guess(i: int) -> None:
        if spread == "one_address":  # one attacker, one user
            login(svc, "sue", f"guess {i}", "10.0.0.1")
        elif spread == "many_addresses":  # the per-user limit: one user from many addresses
            login(svc, "sue", f"guess {i}", f"10.0.1.{i}")
        else:  # the per-address limit: many users from one address
            login(svc, f"u{i}", f"guess {i}", "10.0.0.9")

    try:
        outcomes = _race(guess, GUESSES)
        assert outcomes["checked"] <= LIMIT, outcomes
        assert outcomes["checked"] + outcomes["limited"] == GUESSES, outcomes
        with svc.db.read() as conn:
            failed = conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.action == "login_failed")
            ).scalar_one()
            refused = conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.action == "login_limited")
            ).scalar_one()
        # Every attempt is in the audit log, refused ones included.
        assert (failed, refused) == (outcomes["checked"], outcomes["limited"])
        # The right password is refused too while the limit holds.
        who, where = ("u0", "10.0.0.9") if spread == "many_users" else ("sue", "10.0.0.1")
        with pytest.raises(RateLimited):
            login(svc, who, "a long password 123", where)
    finally:
        svc.db.dispose()


def test_right_password_in_parallel_with_guesses_still_logs_in(db_url: str) -> None:
    settings = make_settings(db_url, auth={"login_max_failures": LIMIT})
    admin.create_user(settings, "sue", "a long password 123", "supervisor", ["site1"])
    svc = build_services(settings)

    def attempt(i: int) -> None:
        login(svc, "sue", "a long password 123" if i == 0 else f"guess {i}", f"10.0.2.{i}")

    try:
        outcomes = _race(attempt, LIMIT)
        # Below the limit nothing is refused: the right one logs in, the others are checked.
        assert outcomes == Counter({"ok": 1, "checked": LIMIT - 1})
    finally:
        svc.db.dispose()
