"""Server-rendered SVG charts: bars with labels and values, readable on screen, offline and in print."""

from __future__ import annotations

from html import escape

# Colours carry meaning, the same on every chart and in the legend: red is a pull not carried out,
# amber a parcel held, green a pull done, grey a pull still on its way; blue is plain volume.
MISSED = "#b91c1c"
HELD = "#b45309"
DONE = "#15803d"
PENDING = "#64748b"
VOLUME = "#1d4ed8"


def bar_chart(
    title: str,
    bars: list[tuple[str, int]],
    empty: str,
    colour: str | None = None,
    colours: list[str] | None = None,
) -> str:
    """Horizontal bars, one per (label, value), in `colours` (one per bar) or `colour` (default: volume);
    the title doubles as the accessible name."""
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
        fill = colours[i] if colours else colour or VOLUME
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" font-size="14" text-anchor="end" fill="#111827">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" fill="{fill}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="14" fill="#111827">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hour_chart(title: str, counts: list[int]) -> str:
    """24 vertical bars, hour 0 to 23 of the site's day, with every third hour labelled."""
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
            f'<rect x="{x + 3}" y="{pad + chart_h - h}" width="{col - 6}" height="{h}" fill="{VOLUME}">'
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


def trend_chart(title: str, days: list[str], series: list[tuple[str, str, list[int]]], empty: str) -> str:
    """Stacked vertical bars, one per day, each stacking the (label, colour, values) series in order;
    every bar's total above it and a tooltip naming each part."""
    if any(len(values) != len(days) for _, _, values in series):
        raise ValueError("trend_chart needs one value per day in every series")
    col = max(14, min(60, 640 // max(1, len(days))))
    chart_h, pad, base = 160, 10, 34
    width, height = pad * 2 + max(1, len(days)) * col, chart_h + base + pad * 2
    totals = [sum(values[i] for _, _, values in series) for i in range(len(days))]
    top = max(totals, default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad}" y1="{pad + chart_h}" x2="{width - pad}" y2="{pad + chart_h}" stroke="#6b7280"/>',
    ]
    if not days or not any(totals):
        parts.append(f'<text x="{pad}" y="{pad + 17}" font-size="15" fill="#374151">{escape(empty)}</text>')
    every = max(1, round(len(days) / 10))
    for i, day in enumerate(days):
        x = pad + i * col
        y = pad + chart_h
        for label, fill, values in series:
            h = round((chart_h - 18) * values[i] / top)
            if h:
                y -= h
                parts.append(
                    f'<rect x="{x + 2}" y="{y}" width="{col - 4}" height="{h}" fill="{fill}">'
                    f"<title>{escape(day)} {escape(label)} {values[i]}</title></rect>"
                )
        if totals[i]:
            parts.append(
                f'<text x="{x + col / 2}" y="{y - 3}" font-size="11" text-anchor="middle" '
                f'fill="#111827">{totals[i]}</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + col / 2}" y="{pad + chart_h + 16}" font-size="11" text-anchor="middle" '
                f'fill="#111827">{escape(day[5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
