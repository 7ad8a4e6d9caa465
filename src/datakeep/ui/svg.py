"""Charts and graphs drawn on the server as inline SVG: no JavaScript, nothing to build.
Every piece of text placed in a drawing is escaped here, since the result is markup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

__all__ = ["STATUS_COLOURS", "graph", "line_chart", "stacked_columns", "status_bar"]

STATUS_COLOURS = {
    "completed": "#2e9e5b",
    "failed": "#d64545",
    "filtered": "#e0a030",
    "duplicate": "#8e6cc4",
    "pending": "#a8b0b8",
    "running": "#3a7bd5",
    "cancelled": "#5b6470",
    "completed_with_errors": "#c9b030",
}
_OTHER = "#7a8a99"
# presentation attributes, not classes: a drawing served on its own has no stylesheet
_TICK = 'font-size="11" fill="#5b6470" font-family="sans-serif"'
_NODE = 'font-size="12" fill="#1d2733" font-family="sans-serif"'


def _svg(width: float, height: float, body: str, label: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">'
        f"{body}</svg>"
    )


def status_bar(counts: Mapping[str, int], width: int = 240, height: int = 14) -> Markup:
    """Records per status as one bar of coloured parts, each with its count as a tooltip."""
    total = sum(counts.values())
    if total == 0:
        body = f'<rect width="{width}" height="{height}" fill="#eef0f2" rx="3"/>'
        return _svg(width, height, body, "no records")
    x = 0.0
    parts = []
    for status, n in counts.items():
        if not n:
            continue
        w = width * n / total
        colour = STATUS_COLOURS.get(status, _OTHER)
        parts.append(
            f'<rect x="{x:.2f}" width="{w:.2f}" height="{height}" fill="{colour}">'
            f"<title>{escape(status)}: {n:,}</title></rect>"
        )
        x += w
    summary = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
    return _svg(width, height, "".join(parts), summary)


def stacked_columns(
    columns: Sequence[Mapping[str, int]],
    labels: Sequence[str],
    statuses: Sequence[str],
    width: int = 720,
    height: int = 220,
) -> Markup:
    """One column per bucket, stacked by status: records per status over time."""
    left, bottom, top = 48, 28, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((sum(c.values()) for c in columns), default=0) or 1
    step = plot_w / max(len(columns), 1)
    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#99a3ad"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_TICK}>{peak:,}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {_TICK}>0</text>',
    ]
    for i, column in enumerate(columns):
        y = float(top + plot_h)
        for status in statuses:
            n = column.get(status, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            colour = STATUS_COLOURS.get(status, _OTHER)
            tip = f"{labels[i]}: {status} {n:,}" if i < len(labels) else f"{status} {n:,}"
            parts.append(
                f'<rect x="{left + i * step + 1:.2f}" y="{y:.2f}" width="{max(step - 2, 1):.2f}" '
                f'height="{h:.2f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
    if labels:
        for i in (0, len(labels) - 1):
            anchor = "start" if i == 0 else "end"
            x = left if i == 0 else width - 10
            parts.append(
                f'<text x="{x}" y="{height - 8}" text-anchor="{anchor}" {_TICK}>'
                f"{escape(labels[i])}</text>"
            )
    return _svg(width, height, "".join(parts), "records per status over time")


def line_chart(
    points: Sequence[tuple[str, float]], name: str, width: int = 360, height: int = 160
) -> Markup:
    """A metric across snapshots: one point per snapshot, in the order taken."""
    left, bottom, top, right = 52, 24, 12, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    step = plot_w / max(len(points) - 1, 1)

    def at(i: int, v: float) -> tuple[float, float]:
        return left + i * step, top + plot_h - plot_h * (v - low) / span

    coords = [at(i, v) for i, (_, v) in enumerate(points)]
    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#99a3ad"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_TICK}>{high:.4g}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {_TICK}>{low:.4g}</text>',
        f'<text x="{left}" y="{height - 6}" {_TICK}>{escape(name)}</text>',
    ]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#3a7bd5" stroke-width="2"/>')
    for (label, v), (x, y) in zip(points, coords, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#3a7bd5">'
            f"<title>{escape(label)}: {v:g}</title></circle>"
        )
    return _svg(width, height, "".join(parts), f"{name} across snapshots")


def graph(
    nodes: Sequence[Mapping[str, Any]],
    edges: Sequence[Mapping[str, str]],
    links: Mapping[str, str] | None = None,
) -> Markup:
    """A left-to-right layered drawing: ``nodes`` have an ``id``, ``label``, ``kind``
    (``data``: a box; ``step``: a rounded, filled box) and ``layer`` (0 on the right,
    upstream to the left); ``edges`` go ``from`` one id ``to`` another, upstream first.
    ``links`` gives some nodes a URL."""
    col_w, row_h, box_w, box_h = 220, 56, 180, 34
    layers: dict[int, list[str]] = {}
    for node in nodes:
        layers.setdefault(node["layer"], []).append(node["id"])
    deepest = max(layers, default=0)
    place: dict[str, tuple[float, float]] = {}
    for layer, ids in layers.items():
        for row, node_id in enumerate(ids):
            # the furthest upstream on the left, the ref asked about on the right
            place[node_id] = (20 + (deepest - layer) * col_w, 20 + row * row_h)
    width = 40 + (deepest + 1) * col_w - (col_w - box_w)
    height = 40 + max((len(ids) for ids in layers.values()), default=1) * row_h - (row_h - box_h)
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a8a99"/></marker>'
        "</defs>"
    ]
    for edge in edges:
        a, b = edge["from"], edge["to"]
        if a not in place or b not in place:
            continue
        (x1, y1), (x2, y2) = place[a], place[b]
        sx, sy, ex, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
        mid = (sx + ex) / 2
        parts.append(
            f'<path d="M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.0f} '
            f'{ex:.0f},{ey:.0f}" '
            'fill="none" stroke="#7a8a99" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        node_id, label, kind = node["id"], str(node["label"]), node["kind"]
        x, y = place[node_id]
        fill, stroke, rx = ("#e8f0fb", "#3a7bd5", 10) if kind == "step" else ("#fff", "#5b6470", 2)
        text = label if len(label) <= 26 else label[:25] + "…"
        box = (
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="{rx}" '
            f'fill="{fill}" stroke="{stroke}"/><text x="{x + box_w / 2:.0f}" '
            f'y="{y + box_h / 2 + 4:.0f}" text-anchor="middle" {_NODE}>{escape(text)}</text>'
            f"<title>{escape(label)}</title>"
        )
        url = (links or {}).get(node_id)
        parts.append(f'<a href="{escape(url)}">{box}</a>' if url else f"<g>{box}</g>")
    return _svg(width, height, "".join(parts), "lineage graph")
