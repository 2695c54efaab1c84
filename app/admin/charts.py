"""Small server-rendered SVG charts for the dashboard: no JavaScript, no inline styles (the console's
CSP allows neither), colours from classes in admin.css, a ``<title>`` on every mark for a tooltip and
an ``aria-label`` summarising the chart for screen readers."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 240, 64, 2
TOP = 13  # room for the scale label above the marks
# Stacking order, bottom up; anything else is drawn as "other" on top.
OUTCOME_ORDER = ("ok", "unavailable", "failed", "needs_reauth")
OUTCOME_LABELS = {"ok": "ok", "unavailable": "transient failure", "failed": "failed (configuration)",
                  "needs_reauth": "needs reauth"}


@lru_cache(maxsize=4096)
def _label(start: datetime, slot: timedelta, index: int) -> str:
    begin = start + slot * index
    end = begin + slot
    fmt = "%H:%M" if slot < timedelta(hours=24) and begin.date() == end.date() else "%m-%d %H:%M"
    return f"{begin:%m-%d %H:%M}–{end:{fmt}}"


def _svg(label: str, body: list[str], css: str) -> Markup:
    # Every value put into the SVG is a number, a fixed class name, or text passed through escape().
    return Markup(  # noqa: S704
        f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg"><rect class="frame" x="0" y="0" '
        f'width="{WIDTH}" height="{HEIGHT}"/>{"".join(body)}</svg>')


def _bar(css: str, x: float, y: float, w: float, h: float, title: str) -> str:
    return (f'<rect class="bar {css}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
            f'<title>{escape(title)}</title></rect>')


def _axis(text: str) -> str:
    return f'<text class="axis" x="4" y="10">{escape(text)}</text>'


def _dot(css: str, x: float, y: float, title: str) -> str:
    return f'<circle class="dot {css}" cx="{x:.1f}" cy="{y:.1f}" r="1.8"><title>{escape(title)}</title></circle>'


def outcome_bars(slots: Sequence[Counter], start: datetime, slot: timedelta, what: str) -> Markup:
    """Stacked bars, one per slot, of refresh outcomes."""
    top = max((sum(c.values()) for c in slots), default=0)
    count = len(slots) or 1
    step = (WIDTH - 2 * PAD) / count
    body: list[str] = []
    for index, counts in enumerate(slots):
        total = sum(counts.values())
        if not total:
            continue
        x = PAD + index * step
        y = HEIGHT - PAD
        order = [o for o in OUTCOME_ORDER if counts.get(o)] + sorted(o for o in counts if o not in OUTCOME_ORDER)
        label = _label(start, slot, index)
        parts = ", ".join(f"{counts[o]:,} {OUTCOME_LABELS.get(o, o)}" for o in order)
        for outcome in order:
            height = (HEIGHT - TOP - PAD) * counts[outcome] / top
            y -= height
            css = outcome if outcome in OUTCOME_ORDER else "other"
            body.append(_bar(css, x, y, max(step - 1, 1), max(height, 0.5), f"{label}: {parts}"))
    if top:
        body.append(_axis(f"max {top:,}"))
    failures = sum(n for c in slots for o, n in c.items() if o != "ok")
    total = sum(sum(c.values()) for c in slots)
    return _svg(f"{what}: {total} refreshes, {failures} not ok; tallest bar {top}", body, "outcomes")


def duration_lines(p50: Sequence[float | None], p95: Sequence[float | None], start: datetime, slot: timedelta,
                   what: str) -> Markup:
    """p50 and p95 refresh duration per slot, as two lines on a log scale from 1 ms to the highest p95
    (so a slow p95 does not flatten the p50 line)."""
    top = max((v for v in list(p95) + list(p50) if v is not None), default=0.0)
    count = len(p50) or 1
    step = (WIDTH - 2 * PAD) / count
    body: list[str] = []
    if top > 0:
        for css, values in (("p95", p95), ("p50", p50)):
            points = []
            for index, value in enumerate(values):
                if value is None:
                    continue
                x = PAD + step * (index + 0.5)
                y = HEIGHT - PAD - (HEIGHT - TOP - PAD) * math.log10(max(value, 1)) / math.log10(max(top, 10))
                points.append((x, y, index, value))
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
                body.append(f'<polyline class="line {css}" points="{path}"/>')
            for x, y, index, value in points:
                title = f"{_label(start, slot, index)}: {css} ≈ {format_ms(value)}"
                body.append(_dot(css, x, y, title))
    if top:
        body.append(_axis(f"max {format_ms(top)}"))
    summary = f"{what} (log scale): highest {format_ms(top)}" if top else f"{what}: no timed refreshes"
    return _svg(summary, body, "durations")


def format_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"
