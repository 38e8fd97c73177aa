"""Words of the server pages in Simplified Chinese and English: the catalogs, and words not yet folded in."""

from __future__ import annotations

from server.web.catalog import Words, load_words

LANGUAGES = ("zh", "en")

# The words live in the gettext catalogs under server/web/locale (msgid = key). New words may be added
# here first, key: (Simplified Chinese, English), in a block of their own; they show at once, and
# `make catalogs` moves them into the catalogs and empties these dicts.
WORDS: dict[str, tuple[str, str]] = {}

# Labels of new reason codes of the edge's decide(), folded as `reason_<CODE>` (same as WORDS).
REASONS: dict[str, tuple[str, str]] = {}


def words(lang: str) -> Words:
    """All words of one language; an unknown language is a ValueError, an unknown key shows as itself."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; known: {list(LANGUAGES)}")
    pending = tuple((k, *v) for k, v in WORDS.items()) + tuple(
        (f"reason_{k}", *v) for k, v in REASONS.items()
    )
    return load_words(lang, pending)
