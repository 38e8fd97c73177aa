"""`make catalogs` on a copy: waiting words go into both .po files, new keys are found, all compiles."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from server.web import catalog
from server.web.catalog_tool import DOMAINS, Domain, compile_domain, pending_words, update_domain

WAITING = '''"""Words waiting to be folded."""

LANGUAGES = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    # a block of one page's new words
    "fold_me": ("折叠我", "Fold me"),
    "claim": ("认领任务", "Claim it"),
}

REASONS: dict[str, tuple[str, str]] = {"NEW_CODE": ("新原因", "New reason")}


def words(lang: str) -> None:
    """Kept as it is."""
'''


@pytest.fixture
def copy(tmp_path: Path) -> Domain:
    server = DOMAINS[0]
    web = tmp_path / "web"
    shutil.copytree(server.web / "locale", web / "locale", ignore=shutil.ignore_patterns("*.mo"))
    (web / "templates").mkdir()
    (web / "templates" / "new.html").write_text(
        "<p>{{ t.fold_me }} {{ t['brand_new'] }} {{ t.get('reason_' + r, r) }}"
        " {{ t('with_value', n=1) }}</p>",
        encoding="utf-8",
    )
    (web / "words.py").write_text(WAITING, encoding="utf-8")
    return Domain("server", web, web / "words.py", server.dicts)


def test_fold_finds_new_keys_and_compiles(copy: Domain) -> None:
    out = io.StringIO()
    todo = update_domain(copy, out)
    # The template's keys nobody gave words to are added empty and reported; prefixes are not keys.
    assert todo == ["brand_new", "with_value"]
    assert "3 waiting word(s) folded in" in out.getvalue()
    assert pending_words(copy) == {}
    left = copy.pending.read_text(encoding="utf-8")
    assert "WORDS: dict[str, tuple[str, str]] = {}\n" in left and '"""Kept as it is."""' in left
    assert "REASONS: dict[str, tuple[str, str]] = {}\n" in left
    compile_domain(copy)
    zh = catalog.read_catalog(copy.web / "locale", "server", "zh")
    en = catalog.read_catalog(copy.web / "locale", "server", "en")
    assert zh["fold_me"] == "折叠我" and en["fold_me"] == "Fold me"
    # A waiting word replaces the catalog's words for its key; a reason code gets its prefix.
    assert zh["claim"] == "认领任务" and en["reason_NEW_CODE"] == "New reason"
    assert "brand_new" not in zh  # no words yet: the page shows the key until someone writes them
    # Folding again changes nothing.
    before = copy.po("zh").read_bytes()
    assert update_domain(copy, io.StringIO()) == ["brand_new", "with_value"]
    assert copy.po("zh").read_bytes() == before


def test_a_waiting_word_without_both_languages_is_refused(copy: Domain) -> None:
    copy.pending.write_text('WORDS: dict[str, tuple[str, str]] = {"half": ("只有中文",)}\n', encoding="utf-8")
    before = copy.po("zh").read_bytes()
    with pytest.raises(ValueError, match="'half' must be"):
        update_domain(copy, io.StringIO())
    assert copy.po("zh").read_bytes() == before  # nothing written
