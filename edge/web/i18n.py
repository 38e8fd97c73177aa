"""Words of the operator terminal in Simplified Chinese and English, from its gettext catalogs."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LOCALES = {"zh": "zh_CN", "en": "en"}

# The words live in the catalogs under edge/web/locale (msgid = key); the script receives the table of
# the chosen language. New words may be added here first, key: (Simplified Chinese, English), in a
# block of their own; they show at once, and `make catalogs` moves them into the catalogs.
STRINGS: dict[str, tuple[str, str]] = {}


class CatalogMissing(FileNotFoundError):
    """The terminal's catalog is neither compiled nor present as .po: the install is broken."""


def _catalog(lang: str) -> dict[str, str]:
    # The .mo is built by `make catalogs` and the package build; a checkout without a fresh one
    # reads the .po source instead, and says so.
    po = LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / "terminal.po"
    mo = po.with_suffix(".mo")
    fresh = mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime)
    if not fresh and not po.is_file():
        raise CatalogMissing(f"no terminal catalog for {LOCALES[lang]} under {LOCALE_DIR}")
    if not fresh:
        log.warning("terminal.mo for %s is missing or stale: reading the .po (run `make catalogs`)", lang)
    with (mo if fresh else po).open("rb") as f:
        entries = read_mo(f) if fresh else read_po(f, locale=LOCALES[lang])
    return {str(m.id): m.string for m in entries if m.id and isinstance(m.string, str) and m.string}


class Table(dict[str, str]):
    """One language's strings; a template asking for an unknown key shows the key and it is logged."""

    lang = ""

    def __missing__(self, key: str) -> str:
        log.warning(
            "no terminal words for %r in %s: showing the key (add it with `make catalogs`)", key, self.lang
        )
        return key


@lru_cache(maxsize=4)
def _table(lang: str) -> dict[str, str]:
    out = _catalog(lang)
    out.update({key: pair[LANGUAGES.index(lang)] for key, pair in STRINGS.items()})
    return out


def table(lang: str) -> Table:
    """All strings of one language; an unknown language is a ValueError, not a silent fallback."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {list(LANGUAGES)}")
    out = Table(_table(lang))
    out.lang = lang
    return out
