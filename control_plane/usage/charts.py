"""Server-side SVG charts for the admin (no JavaScript, no CDN): pure functions of the data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 720, 160, 36
BOTTOM, RIGHT = HEIGHT - PAD, WIDTH - PAD


def _polyline(points: Sequence[tuple[datetime, float]]) -> str:
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = max(t1 - t0, 1.0)
    top = max(v for _, v in points) or 1.0
    return " ".join(
        f"{PAD + (t.timestamp() - t0) / span * (RIGHT - PAD):.1f},"
        f"{BOTTOM - v / top * (BOTTOM - PAD):.1f}"
        for t, v in points
    )


def line_chart(title: str, unit: str, points: Sequence[tuple[datetime, float]]) -> SafeString:
    """A polyline over time, its maximum and its time range labelled; every text escaped."""
    if not points:
        return format_html(
            '<figure class="asc-chart" data-title="{}"><figcaption>{}</figcaption>'
            '<p class="asc-empty">No data in this range.</p></figure>',
            title,
            title,
        )
    top = max(v for _, v in points)
    axes = mark_safe(  # constants only
        f'<line x1="{PAD}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{BOTTOM}" stroke="#999"/>'
    )
    return format_html(
        '<figure class="asc-chart" data-title="{title}"><figcaption>{title}</figcaption>'
        '<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}">'
        "{axes}"
        '<text x="{ylabel_x}" y="{ylabel_y}" font-size="10">max {top} {unit}</text>'
        '<text x="{pad}" y="{tlabel_y}" font-size="10">{first}</text>'
        '<text x="{right}" y="{tlabel_y}" text-anchor="end" font-size="10">{last}</text>'
        '<polyline class="asc-series" fill="none" stroke="#417690" stroke-width="2" '
        'points="{coords}"/></svg></figure>',
        title=title,
        w=WIDTH,
        h=HEIGHT,
        axes=axes,
        ylabel_x=PAD + 4,
        ylabel_y=PAD - 6,
        pad=PAD,
        top=f"{top:g}",
        unit=unit,
        tlabel_y=BOTTOM + 14,
        first=f"{points[0][0]:%Y-%m-%d %H:%M}",
        right=RIGHT,
        last=f"{points[-1][0]:%Y-%m-%d %H:%M}",
        coords=_polyline(points),
    )
