"""The terminal in Chinese: its pages have no English left, and device states come as words to show."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edge.agent import EdgeAgent
from edge.terminal import create_terminal_app
from edge.web.causes import plain_state
from edge.web.i18n import table
from tests.edge.test_terminal import agent, client  # noqa: F401 (fixtures)
from tests.server.test_page_words import english_words

# The station's ids and the logged-in operator's id and name in the test configuration.
STATION = {"S1", "SITE", "L1", "op7", "Li", "Wei"}


def test_terminal_page_in_chinese_has_no_english_words(client: TestClient) -> None:  # noqa: F811
    page = client.get("/?lang=zh").text
    assert "安检操作终端" in page
    assert [w for w in english_words(page) if w not in STATION] == []


def test_terminal_login_page_in_chinese_has_no_english_words(agent: EdgeAgent) -> None:  # noqa: F811
    page = TestClient(create_terminal_app(agent)).get("/login?lang=zh").text
    assert "操作员登录" in page
    assert [w for w in english_words(page) if w not in STATION] == []


def test_device_states_are_keys_with_values_in_both_languages(client: TestClient, agent: EdgeAgent) -> None:  # noqa: F811
    tiles = {d["name"]: d for d in client.get("/api/health").json()["devices"]}
    # The replay of the test's reads has run out: the scanner says so in words, not in English.
    assert tiles["scanner"]["detail"] == "replay finished"
    assert tiles["scanner"]["said"] == {"key": "state_replay_finished", "args": {}}
    assert table("zh")["state_replay_finished"] == "回放已结束"
    said = plain_state("last divert DIVERTED")
    assert said == {"key": "state_last_divert", "args": {"outcome": "DIVERTED"}}
    assert "{outcome}" in table("zh")["state_last_divert"] and table("zh")["DIVERTED"] == "已分拣"
    assert plain_state("something nobody wrote") is None
    for lang in ("zh", "en"):
        words = table(lang)
        assert words["overdue_by"].count("{n}") == 1 and words["status"] != "Operator"
    assert table("zh")["no_such_key"] == "no_such_key"  # shown as itself, logged, never an error


def test_the_terminal_reads_the_po_when_the_mo_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from edge.web import i18n

    po = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "terminal.po"
    copy = tmp_path / "zh_CN" / "LC_MESSAGES" / "terminal.po"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(po.read_bytes())
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n._table.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="edge.web.i18n"):
            assert i18n.table("zh")["title"] == "安检操作终端"
        assert "missing or stale" in caplog.text
        with pytest.raises(i18n.CatalogMissing):
            i18n.table("en")
    finally:
        i18n._table.cache_clear()
