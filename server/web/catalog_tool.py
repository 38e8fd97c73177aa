"""`make catalogs`: folds waiting words into the gettext catalogs, finds keys used but missing, compiles.

Two catalogs, one per program: `server` (server/web) and `terminal` (edge/web), each a .po per
language (zh_CN, en) whose msgid is the key the templates and scripts use. Words waiting in
server/web/words.py or edge/web/i18n.py (blocks of `key: (zh, en)`) are moved into both .po files and
the dicts emptied. Babel then extracts the keys the templates, scripts and Python use (`t.key`,
`t['key']`, `t("key")`, `W.key`): one missing from the catalogs is added with no words, which the
catalog test reports. Keys built at run time (`reason_` + code) are never removed. Last, every .po
is compiled to its .mo, which is what the programs read.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[2]
LOCALES = {"zh": "zh_CN", "en": "en"}
# How the code names a key. Templates and Python: `t.key`, `t['key']`, `t.get('key'`, `t('key'`
# (`t` is the words lookup); the scripts: `t("key"` and the terminal's `W.key` / `W["key"]`. A key
# built from a prefix (`'reason_' + r`) is not one: its quote is followed by `+`.
CALL = r"""\bt(?:\.get)?\(\s*['"](\w+)['"]\s*[,)]"""
INDEX = r"""\b{name}\[\s*['"](\w+)['"]\s*\]"""
ATTRIBUTE = r"\b{name}\.(?!get\b|of\b|message\b)([a-z][A-Za-z0-9_]*)\b(?!\s*\()"
KEY_USES = {
    "template": re.compile("|".join((CALL, INDEX.format(name="t"), ATTRIBUTE.format(name="t")))),
    "script": re.compile("|".join((CALL, INDEX.format(name="W"), ATTRIBUTE.format(name="W")))),
}
# First match wins; the catalog modules speak of `t.key` in their docs, not as a use.
EXTRACTORS = (
    ("catalog*.py", "ignore"),
    ("templates/**.html", "server.web.catalog_tool:extract_template_keys"),
    ("static/**.js", "server.web.catalog_tool:extract_script_keys"),
    ("*.py", "server.web.catalog_tool:extract_template_keys"),
)


@dataclass(frozen=True)
class Domain:
    """One program's catalog: where its .po files live and where words wait to be folded in."""

    name: str
    web: Path
    pending: Path
    # dict name in `pending` → prefix its keys get in the catalog
    dicts: tuple[tuple[str, str], ...]
    # whether the Python beside the templates looks keys up (the terminal's only serves its table)
    python_uses: bool = True

    def po(self, lang: str) -> Path:
        return self.web / "locale" / LOCALES[lang] / "LC_MESSAGES" / f"{self.name}.po"


DOMAINS = (
    Domain(
        "server",
        ROOT / "server" / "web",
        ROOT / "server" / "web" / "words.py",
        (("WORDS", ""), ("REASONS", "reason_")),
    ),
    Domain("terminal", ROOT / "edge" / "web", ROOT / "edge" / "web" / "i18n.py", (("STRINGS", ""),), False),
)


def _keys(kind: str, fileobj: IO[bytes]) -> Iterator[tuple[int, str, str, list[str]]]:
    text = fileobj.read().decode("utf-8")
    for found in KEY_USES[kind].finditer(text):
        key = next(g for g in found.groups() if g)
        yield text.count("\n", 0, found.start()) + 1, "", key, []


def extract_template_keys(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extraction method for templates and Python: the keys named through `t`, with their lines."""
    return _keys("template", fileobj)


def extract_script_keys(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extraction method for the pages' scripts: keys named through `t(...)` or `W`."""
    return _keys("script", fileobj)


def used_keys(domain: Domain) -> dict[str, list[str]]:
    """Key → the places (file:line) that use it, from the domain's templates, scripts and Python."""
    methods = [(glob, how) for glob, how in EXTRACTORS if domain.python_uses or not glob.endswith(".py")]
    out: dict[str, list[str]] = {}
    for name, line, key, _comments, _ctx in extract_from_dir(domain.web, methods):
        if not name.startswith("locale"):
            out.setdefault(str(key), []).append(f"{name}:{line}")
    return out


def _pending_nodes(domain: Domain) -> list[tuple[str, ast.Dict]]:
    tree = ast.parse(domain.pending.read_text(encoding="utf-8"))
    wanted = dict(domain.dicts)
    found = []
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id in wanted
            and isinstance(node.value, ast.Dict)
        ):
            found.append((wanted[node.target.id], node.value))
    return found


def pending_words(domain: Domain) -> dict[str, tuple[str, str]]:
    """The words waiting in the domain's Python file, keyed as in the catalog; each must have both."""
    out: dict[str, tuple[str, str]] = {}
    for prefix, node in _pending_nodes(domain):
        for key, pair in ast.literal_eval(node).items():
            if not (
                isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) and x for x in pair)
            ):
                raise ValueError(f"{domain.pending.name}: {key!r} must be (Simplified Chinese, English)")
            out[prefix + key] = pair
    return out


def empty_pending(domain: Domain) -> None:
    """Rewrite the waiting dicts as `{}`, keeping everything else in the file as it is."""
    lines = domain.pending.read_text(encoding="utf-8").splitlines(keepends=True)
    # From the last dict up, so that earlier positions stay valid.
    for _prefix, node in sorted(_pending_nodes(domain), key=lambda p: -p[1].lineno):
        assert node.end_lineno is not None and node.end_col_offset is not None
        head = lines[node.lineno - 1][: node.col_offset]
        tail = lines[node.end_lineno - 1][node.end_col_offset :]
        lines[node.lineno - 1 : node.end_lineno] = [head + "{}" + tail]
    domain.pending.write_text("".join(lines), encoding="utf-8")


def read_catalog(path: Path, lang: str, domain: str) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=LOCALES[lang], domain=domain)


def write_catalog(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, no_location=True, width=100, ignore_obsolete=False)


def compile_domain(domain: Domain) -> list[Path]:
    """Each .po of the domain compiled to the .mo beside it; the paths written."""
    written = []
    for lang in LOCALES:
        po = domain.po(lang)
        catalog = read_catalog(po, lang, domain.name)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo)
    return written


def update_domain(domain: Domain, out: IO[str]) -> list[str]:
    """Fold the waiting words in, add keys used but missing (with no words); the keys still to translate."""
    waiting = pending_words(domain)
    used = used_keys(domain)
    catalogs = {lang: read_catalog(domain.po(lang), lang, domain.name) for lang in LOCALES}
    for key, pair in waiting.items():
        for i, lang in enumerate(LOCALES):
            # Babel's add() keeps an existing entry's words: a waiting word replaces them on purpose.
            found = catalogs[lang].get(key)
            if found is None:
                catalogs[lang].add(key, pair[i])
            else:
                found.string = pair[i]
    missing = sorted(k for k in used if not all(catalogs[lang].get(k) for lang in LOCALES))
    for key in missing:
        for lang in LOCALES:
            if catalogs[lang].get(key) is None:
                catalogs[lang].add(key, "", auto_comments=[f"used at {', '.join(used[key][:3])}"])
    for lang, catalog in catalogs.items():
        write_catalog(domain.po(lang), catalog)
    if waiting:
        empty_pending(domain)
    untranslated = sorted({str(m.id) for c in catalogs.values() for m in c if m.id and not m.string})
    print(
        f"{domain.name}: {len(waiting)} waiting word(s) folded in, {len(untranslated)} key(s) without words"
        + (": " + ", ".join(untranslated) if untranslated else ""),
        file=out,
    )
    return untranslated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catalogs", description=__doc__.split("\n")[0])
    parser.add_argument("--compile-only", action="store_true", help="only build the .mo files")
    args = parser.parse_args(argv)
    todo: list[str] = []
    for domain in DOMAINS:
        if not args.compile_only:
            todo += update_domain(domain, sys.stdout)
        for mo in compile_domain(domain):
            print(f"compiled {mo.relative_to(ROOT)}")
    return 1 if todo else 0


if __name__ == "__main__":
    raise SystemExit(main())
