"""Find a TrueType font with Chinese glyphs at run time (fontconfig first, then the usual Debian paths)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

FONT_NAME = "ParcelguardCJK"
# TrueType outlines only: reportlab cannot embed the CFF outlines of Noto Sans CJK's OTF files.
KNOWN_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
INSTALL_HINT = "install one with `make system-packages` (Debian package fonts-wqy-zenhei)"
SAMPLE = "移送函证据"


class FontMissing(RuntimeError):
    """No usable font with Chinese glyphs is installed: the referral letter cannot be rendered."""


def _fontconfig_candidates() -> list[str]:
    fc = shutil.which("fc-list")
    if fc is None:
        return []
    try:
        out = subprocess.run(
            [fc, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    files = [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]
    return sorted(f for f in files if f.lower().endswith((".ttf", ".ttc")))


def _covers(font: TTFont) -> bool:
    widths = font.face.charToGlyph
    return all(ord(ch) in widths for ch in SAMPLE)


@functools.cache
def chinese_font() -> str:
    """Register the first font that loads and has the glyphs; returns its reportlab name."""
    tried: list[str] = []
    for path in [*KNOWN_PATHS, *_fontconfig_candidates()]:
        if path in tried or not Path(path).is_file():
            continue
        tried.append(path)
        try:
            font = TTFont(FONT_NAME, path, subfontIndex=0)
        except (TTFError, OSError, ValueError):
            continue
        if _covers(font):
            pdfmetrics.registerFont(font)
            return FONT_NAME
    where = ", ".join(tried) or "none found"
    raise FontMissing(
        f"no TrueType font with Chinese glyphs usable for the referral letter (tried: {where});"
        f" {INSTALL_HINT}"
    )
