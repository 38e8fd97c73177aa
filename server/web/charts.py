"""Server-rendered SVG charts: bars with labels and values, readable on screen, offline and in print."""

from __future__ import annotations

from html import escape

BAR_COLOURS = ("#1d4ed8", "#b91c1c", "#15803d", "#a16207", "#6d28d9", "#0f766e", "#be185d", "#374151")


def bar_chart(title: str, bars: list[tuple[str, int]], empty: str, colour: str | None = None) -> str:
    """Horizontal bars, one per (label, value); the title doubles as the accessible name."""
    row_h, label_w, bar_w, pad = 26, 290, 260, 8
    height = pad * 2 + max(1, len(bars)) * row_h
    width = label_w + bar_w + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    if not bars:
        parts.append(f'<text x="{pad}" y="{pad + 17}" font-size="15" fill="#374151">{escape(empty)}</text>')
    top = max((v for _, v in bars), default=0) or 1
    for i, (label, value) in enumerate(bars):
        y = pad + i * row_h
        w = round(bar_w * value / top) if value else 0
        fill = colour or BAR_COLOURS[i % len(BAR_COLOURS)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" font-size="14" text-anchor="end" fill="#111827">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" fill="{fill}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="14" fill="#111827">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hour_chart(title: str, counts: list[int]) -> str:
    """24 vertical bars, hour 0 to 23 (UTC), with every third hour labelled."""
    if len(counts) != 24:
        raise ValueError("hour_chart needs 24 counts")
    col, chart_h, pad, base = 24, 150, 10, 22
    width, height = pad * 2 + 24 * col, chart_h + base + pad * 2
    top = max(counts) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad}" y1="{pad + chart_h}" x2="{width - pad}" y2="{pad + chart_h}" stroke="#6b7280"/>',
    ]
    for hour, n in enumerate(counts):
        h = round((chart_h - 16) * n / top)
        x = pad + hour * col
        parts.append(
            f'<rect x="{x + 3}" y="{pad + chart_h - h}" width="{col - 6}" height="{h}" fill="#b91c1c">'
            f"<title>{hour:02d}:00 {n}</title></rect>"
        )
        if n:
            parts.append(
                f'<text x="{x + col / 2}" y="{pad + chart_h - h - 3}" font-size="11" text-anchor="middle" '
                f'fill="#111827">{n}</text>'
            )
        if hour % 3 == 0:
            parts.append(
                f'<text x="{x + col / 2}" y="{pad + chart_h + 16}" font-size="12" text-anchor="middle" '
                f'fill="#111827">{hour:02d}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
