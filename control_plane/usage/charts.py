"""Server-side SVG charts for the admin (no JavaScript, nothing fetched): pure functions of the
data, every text escaped.

``timeline_chart`` draws several series as lanes stacked over one shared time axis (each lane
scaled to its own maximum, so spend in dollars and requests in thousands both read), and the
events of the range as vertical marks crossing every lane, labelled at the top."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 1080
GUTTER = 168  # the lanes' titles and maxima, left of the plot
RIGHT = 16
MARK_ROW = 15  # the marks' labels, one row per kind, above the lanes
MARK_BAND = 3 * MARK_ROW + 10
LANE_H, LANE_GAP = 64, 14
AXIS_H = 26
# Drawn in these colours; a page may restyle the classes (the admin's dark theme does).
GRID, AXIS, TEXT, MUTED = "#e6e9ed", "#9aa3ad", "#1f2933", "#66707a"

# Colours of the kinds of marks, and their names in the legend.
MARKS = {
    "version": ("#3d5a80", "snapshot version published"),
    "threshold": ("#d08700", "budget threshold crossed"),
    "circuit": ("#c62828", "circuit found open"),
}


@dataclass(frozen=True)
class Lane:
    title: str
    unit: str
    values: Sequence[float]  # one per bucket
    color: str
    style: str = "bars"  # "bars" (sums per bucket) or "line" (gaps where ``present`` is false)
    present: Sequence[bool] | None = None  # buckets where a line has a value at all
    digits: int = 0  # decimals shown for this lane's figures


@dataclass(frozen=True)
class Mark:
    at: datetime
    kind: str  # a key of MARKS
    label: str  # short, drawn on the chart
    detail: str  # the tooltip and the events table
    url: str = ""


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _ticks(start: datetime, end: datetime) -> tuple[timedelta, str]:
    """A tick step giving 4 to 12 grid lines over the range, and the format of its labels."""
    span = (end - start).total_seconds()
    for seconds, fmt in (
        (1, "%H:%M:%S"),
        (2, "%H:%M:%S"),
        (5, "%H:%M:%S"),
        (10, "%H:%M:%S"),
        (30, "%H:%M:%S"),
        (60, "%H:%M"),
        (300, "%H:%M"),
        (600, "%H:%M"),
        (1800, "%H:%M"),
        (3600, "%H:%M"),
        (3 * 3600, "%d %b %H:%M"),
        (6 * 3600, "%d %b %H:%M"),
        (12 * 3600, "%d %b %H:%M"),
        (86400, "%d %b"),
        (7 * 86400, "%d %b"),
    ):
        if span / seconds <= 12:
            return timedelta(seconds=seconds), fmt
    return timedelta(days=30), "%b %Y"


class _Frame:
    """Where a time and a value fall on the drawing."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.t0, self.span = start.timestamp(), max((end - start).total_seconds(), 1.0)
        self.x0, self.x1 = GUTTER, WIDTH - RIGHT

    def x(self, at: datetime) -> float:
        return self.x0 + (at.timestamp() - self.t0) / self.span * (self.x1 - self.x0)


def _lane(lane: Lane, top: float, starts: Sequence[datetime], step: timedelta, f: _Frame) -> str:
    peak = max(lane.values, default=0.0)
    scale = (LANE_H - 6) / peak if peak > 0 else 0.0
    base = top + LANE_H
    width = max(f.x(starts[0] + step) - f.x(starts[0]), 0.5) if starts else 0.0
    parts = [
        f'<g class="asc-lane" data-title="{escape(lane.title)}">',
        f'<line x1="{f.x0}" y1="{base}" x2="{f.x1}" y2="{base}" stroke="{AXIS}" class="asc-axis"/>',
        f'<line x1="{f.x0}" y1="{top}" x2="{f.x1}" y2="{top}" stroke="{GRID}" class="asc-grid"/>',
        f'<text x="12" y="{top + 16}" font-size="13" font-weight="600" fill="{TEXT}" class="asc-t">'
        f"{escape(lane.title)}</text>",
        f'<text x="12" y="{top + 33}" font-size="11" fill="{MUTED}" class="asc-q">max '
        f"{escape(_fmt(peak, lane.digits))} {escape(lane.unit)}</text>",
        f'<text x="12" y="{top + 48}" font-size="11" fill="{MUTED}" class="asc-q">total '
        f"{escape(_fmt(sum(lane.values), lane.digits))}</text>"
        if lane.style == "bars"
        else "",  # an average has no total
    ]
    if lane.style == "bars":
        gap = 1.0 if width > 3 else 0.0
        d = "".join(
            f"M{f.x(s) + gap / 2:.1f} {base:.1f}"
            f"v{-v * scale:.1f}h{width - gap:.1f}v{v * scale:.1f}z"
            for s, v in zip(starts, lane.values, strict=True)
            if v > 0
        )
        parts.append(f'<path class="asc-series" fill="{lane.color}" d="{d}"/>')
    else:
        present = lane.present or [True] * len(lane.values)
        runs: list[list[str]] = [[]]
        for s, v, here in zip(starts, lane.values, present, strict=True):
            if here:
                runs[-1].append(f"{f.x(s) + width / 2:.1f} {base - v * scale:.1f}")
            elif runs[-1]:
                runs.append([])
        line = "".join("M" + "L".join(r) for r in runs if r)
        parts.append(
            f'<path class="asc-series" fill="none" stroke="{lane.color}" stroke-width="2" '
            f'stroke-linejoin="round" d="{line}"/>'
        )
        for r in runs:
            if len(r) == 1:  # a lone point: a dot, not an invisible line
                x, y = r[0].split()
                parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{lane.color}"/>')
    parts.append("</g>")
    return "".join(parts)


def _grid(start: datetime, end: datetime, top: float, bottom: float, f: _Frame) -> str:
    step, fmt = _ticks(start, end)
    first = datetime.fromtimestamp(
        (start.timestamp() // step.total_seconds() + 1) * step.total_seconds(), start.tzinfo
    )
    parts, at = [], first
    while at < end:
        x = f.x(at)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID}" '
            f'class="asc-grid"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" '
            f'fill="{MUTED}" class="asc-q">{escape(f"{at:{fmt}}")}</text>'
        )
        at += step
    return "".join(parts)


def _extent(x: float, label: str, f: _Frame) -> tuple[float, float, str]:
    """Where a label drawn at ``x`` reaches (about 7 px a character), and its anchor: to the
    right of its mark, or to the left near the plot's right end."""
    width = 7.0 * len(label) + 8
    if x + width > f.x1:
        return x - width, x, "end"
    return x, x + width, "start"


def _clusters(marks: Sequence[Mark], f: _Frame) -> list[tuple[float, list[Mark]]]:
    """Marks inside the plot, by kind, with one label per group: marks of a kind whose labels
    would overlap are grouped until none do."""
    out: list[tuple[float, list[Mark]]] = []
    for kind in MARKS:
        row: list[tuple[float, list[Mark]]] = []
        for m in sorted((m for m in marks if m.kind == kind), key=lambda m: m.at):
            x = f.x(m.at)
            if not f.x0 <= x <= f.x1:
                continue
            row.append((x, [m]))
            while len(row) > 1:
                (xa, a), (xb, b) = row[-2], row[-1]
                if _extent(xa, _label(a), f)[1] + 6 < _extent(xb, _label(b), f)[0]:
                    break
                row[-2:] = [(xa, a + b)]
        out += row
    return out


def _label(group: list[Mark]) -> str:
    first, last = group[0], group[-1]
    if len(group) == 1:
        return first.label
    if first.kind == "circuit":
        return f"{len(group)} × {first.label}"
    return f"{first.label}…{last.label}" if first.label != last.label else first.label


def _marks(marks: Sequence[Mark], top: float, bottom: float, f: _Frame) -> str:
    parts = []
    for x0, group in _clusters(marks, f):
        kind = group[0].kind
        color = MARKS[kind][0]
        row_y = top - 8 - (2 - list(MARKS).index(kind)) * MARK_ROW
        for m in group:
            x = f.x(m.at)
            body = (
                f"<title>{escape(f'{m.at:%Y-%m-%d %H:%M:%S} UTC — {m.detail}')}</title>"
                f'<line x1="{x:.1f}" y1="{row_y + 3}" x2="{x:.1f}" y2="{bottom}" '
                f'stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
            one = f'<g class="asc-mark asc-mark-{escape(kind)}">{body}</g>'
            parts.append(f'<a href="{escape(m.url)}">{one}</a>' if m.url else one)
        anchor = _extent(x0, _label(group), f)[2]
        dx = -7 if anchor == "end" else 7
        parts.append(
            f'<g class="asc-mark-label asc-mark-label-{escape(kind)}">'
            f'<circle cx="{x0:.1f}" cy="{row_y:.1f}" r="4" fill="{color}"/>'
            f'<text x="{x0 + dx:.1f}" y="{row_y + 4:.1f}" font-size="11" '
            f'font-weight="600" text-anchor="{anchor}" fill="{color}">'
            f"{escape(_label(group))}</text></g>"
        )
    return "".join(parts)


def _hover(
    starts: Sequence[datetime], step: timedelta, lanes: Sequence[Lane], top: float, f: _Frame
) -> str:
    """An invisible column per bucket whose tooltip gives every lane's figure there."""
    if not starts:
        return ""
    width = max(f.x(starts[0] + step) - f.x(starts[0]), 0.5)
    height = len(lanes) * (LANE_H + LANE_GAP)
    cols = []
    for i, s in enumerate(starts):
        figures = "; ".join(
            f"{lane.title} {_fmt(lane.values[i], lane.digits)} {lane.unit}" for lane in lanes
        )
        cols.append(
            f'<rect x="{f.x(s):.1f}" y="{top}" width="{width:.1f}" height="{height}">'
            f"<title>{escape(f'{s:%Y-%m-%d %H:%M} UTC: {figures}')}</title></rect>"
        )
    return f'<g class="asc-hover" fill="transparent">{"".join(cols)}</g>'


def timeline_chart(
    starts: Sequence[datetime],
    step: timedelta,
    lanes: Sequence[Lane],
    marks: Sequence[Mark] = (),
    title: str = "Timeline",
) -> SafeString:
    """Lanes over one time axis (the buckets starting at ``starts``, each ``step`` long) with
    ``marks`` drawn across them."""
    if not starts:
        return mark_safe('<p class="asc-empty">No data in this range.</p>')  # constant
    start, end = starts[0], starts[-1] + step
    f = _Frame(start, end)
    top = MARK_BAND
    bottom = top + len(lanes) * (LANE_H + LANE_GAP) - LANE_GAP
    height = bottom + AXIS_H
    body = [_grid(start, end, top, bottom, f)]
    for i, lane in enumerate(lanes):
        body.append(_lane(lane, top + i * (LANE_H + LANE_GAP), starts, step, f))
    body.append(_hover(starts, step, lanes, top, f))
    body.append(_marks(marks, top, bottom, f))
    svg = (
        f'<svg class="asc-timeline" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">'
        f"{''.join(body)}</svg>"
    )
    return mark_safe(svg)  # every text above went through escape()


def legend() -> SafeString:
    items = "".join(
        f'<span class="asc-legend-item"><i style="background:{color}"></i>{escape(name)}</span>'
        for color, name in MARKS.values()
    )
    return mark_safe(f'<div class="asc-legend">{items}</div>')  # constants, escaped


def share_bar(value: float, peak: float, color: str = "#417690") -> SafeString:
    """A horizontal bar of ``value`` against ``peak`` (for tables of figures)."""
    pct = 0.0 if peak <= 0 else max(0.0, min(100.0, value / peak * 100))
    return mark_safe(
        f'<span class="asc-bar"><i style="width:{pct:.1f}%;background:{escape(color)}"></i></span>'
    )


def sparkline(values: Sequence[float], color: str = "#417690", label: str = "") -> SafeString:
    """A small bar chart of ``values`` (e.g. requests per hour of today), for table cells."""
    width, height, n = 120, 22, max(len(values), 1)
    peak = max(values, default=0.0) or 1.0
    bar = width / n
    d = "".join(
        f"M{i * bar + 0.5:.1f} {height}v{-max(v / peak * height, 1.0):.1f}h{max(bar - 1, 0.5):.1f}"
        f"v{max(v / peak * height, 1.0):.1f}z"
        for i, v in enumerate(values)
        if v > 0
    )
    return mark_safe(
        f'<svg class="asc-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="{GRID}" '
        f'class="asc-grid"/><path fill="{escape(color)}" d="{d}"/></svg>'
    )
