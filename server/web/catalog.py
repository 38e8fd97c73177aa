"""The server pages' gettext catalogs at run time: one language's words, message patterns, fallbacks."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "server"
# The pages' language codes and the gettext locale of each.
LOCALES = {"zh": "zh_CN", "en": "en"}
# Keys whose English text is the pattern of a message the back end writes in English (an error, a
# device's detail): a page shows it in its own language by matching the English text.
MESSAGE_PREFIX = "msg_"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# `{n}` stands for a count: "camera folder x: no more images" is not "{n} images".
NUMBER = r"\d+(?:\.\d+)?"
CJK = re.compile(r"[\u4e00-\u9fff]")


class CatalogMissing(FileNotFoundError):
    """Neither the compiled catalog nor its .po source is there: the install is broken."""


def catalog_path(locale_dir: Path, domain: str, lang: str, suffix: str) -> Path:
    return locale_dir / LOCALES[lang] / "LC_MESSAGES" / f"{domain}{suffix}"


def read_catalog(locale_dir: Path, domain: str, lang: str) -> dict[str, str]:
    """msgid → msgstr of one language, from the compiled .mo (built by `make catalogs` and the package
    build); a checkout whose .mo is missing or older than its .po reads the .po, and says so."""
    po, mo = (catalog_path(locale_dir, domain, lang, s) for s in (".po", ".mo"))
    catalog: Catalog
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            catalog = read_mo(f)
    elif po.is_file():
        log.warning("%s is missing or older than its .po: reading the .po (run `make catalogs`)", mo.name)
        with po.open("rb") as f:
            catalog = read_po(f, locale=LOCALES[lang], domain=domain)
    else:
        raise CatalogMissing(f"no catalog {domain} for {LOCALES[lang]} under {locale_dir}")
    return {str(m.id): str(m.string) for m in catalog if m.id and isinstance(m.string, str) and m.string}


def _pattern(english: str) -> re.Pattern[str]:
    parts = PLACEHOLDER.split(english)
    # split() alternates literal text and placeholder names.
    rx = "".join(
        re.escape(p) if i % 2 == 0 else f"(?P<{p}>{NUMBER if p == 'n' else '.+?'})"
        for i, p in enumerate(parts)
    )
    return re.compile(f"^{rx}$", re.IGNORECASE | re.DOTALL)


class Words(dict[str, str]):
    """One language's words by key; an unknown key shows as itself and is logged, never an error."""

    def __init__(self, lang: str, entries: dict[str, str], patterns: list[tuple[re.Pattern[str], str]]):
        super().__init__(entries)
        self.lang = lang
        self._patterns = patterns

    def __missing__(self, key: str) -> str:
        _warn_once(self.lang, key)
        return key

    def __call__(self, key: str, **params: Any) -> str:
        """The words of `key` with `{name}` filled in from `params`."""
        return fill(self[key], params)

    def of(self, family: str, value: Any) -> str:
        """A stored code (a state, category, action) in words: the key `family_value`, else the code."""
        if value is None or value == "":
            return ""
        key = f"{family}_{value}"
        if key in self:
            return self[key]
        _warn_once(self.lang, key)
        return str(value)

    def message(self, text: str) -> str:
        """A message the back end wrote in English, in this language when a `msg_` pattern matches it."""
        for rx, key in self._patterns:
            found = rx.match(text.strip())
            if found:
                values = {name: self._value(name, v) for name, v in found.groupdict().items()}
                return fill(self[key], values)
        # Text already in words (a page's own sentence) is left alone; only English is news.
        if self.lang != "en" and not CJK.search(text):
            log.warning("no words for the message %r in %s", text[:200], self.lang)
        return text

    def _value(self, name: str, value: str) -> str:
        # A placeholder named after a family ("state", "device") shows its value in words too.
        return self.get(f"{name}_{value}", value)


def fill(text: str, params: dict[str, Any]) -> str:
    """`{name}` in `text` replaced; an unknown placeholder stays as written rather than failing."""
    return PLACEHOLDER.sub(lambda m: str(params[m[1]]) if m[1] in params else m[0], text)


# Keys come from stored codes a station may name freely: the set of those already logged is bounded.
_warned: set[tuple[str, str]] = set()
WARN_AT_MOST = 1000


def _warn_once(lang: str, key: str) -> None:
    if (lang, key) not in _warned and len(_warned) < WARN_AT_MOST:
        _warned.add((lang, key))
        log.warning("no words for %r in %s: showing the key (add it with `make catalogs`)", key[:100], lang)


@lru_cache(maxsize=8)
def load_words(lang: str, pending: tuple[tuple[str, str, str], ...] = ()) -> Words:
    """The catalog of `lang`, plus `pending` (key, zh, en) entries not yet folded into it."""
    if lang not in LOCALES:
        raise ValueError(f"unknown language {lang!r}; known: {list(LOCALES)}")
    entries = read_catalog(LOCALE_DIR, DOMAIN, lang)
    english = entries if lang == "en" else read_catalog(LOCALE_DIR, DOMAIN, "en")
    index = list(LOCALES).index(lang)
    for key, *pair in pending:
        entries[key] = pair[index]
        if lang != "en":
            english = {**english, key: pair[1]}
    # Longest pattern first: "x: {a}" must not take a message that "x: {a} is {b}" fits better.
    patterns = sorted(
        ((_pattern(english[k]), k) for k in english if k.startswith(MESSAGE_PREFIX)),
        key=lambda p: -len(p[0].pattern),
    )
    return Words(lang, entries, patterns)
