"""How the web view writes values for people: sizes, times, short digests, URL parts.
Registered as Jinja2 filters; the JSON API gives the raw values instead."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request

__all__ = [
    "FILTERS",
    "human_size",
    "local_time",
    "pretty_json",
    "short",
    "url_part",
    "url_path",
    "with_param",
]


def human_size(nbytes: float | None) -> str:
    """``114.1 MiB``, as the command line writes sizes."""
    if nbytes is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.0f} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def local_time(value: float | str | dt.datetime | None) -> str:
    """Seconds since the epoch, an ISO 8601 time (as the run pages' JSON has them) or a
    datetime, in local time to the second."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return dt.datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short(digest: str | None) -> str:
    """The first 12 hex digits, as the command line's tables show a digest."""
    if not digest:
        return ""
    return digest.partition(":")[2][:12] or digest[:12]


def url_part(value: str) -> str:
    """One segment of a URL path: every ``/`` and ``%`` encoded, so an id holding them
    still names one thing."""
    return quote(str(value), safe="")


def url_path(value: str) -> str:
    """A path inside a tree for a URL: its ``/`` kept as separators."""
    return quote(str(value), safe="/")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def with_param(request: Request, name: str, value: str | None) -> str:
    """The query string of this page with ``name`` set to ``value`` (removed for None),
    its other parameters kept: a next-page link keeps the filters."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != name]
    if value is not None:
        kept.append((name, value))
    return "?" + urlencode(kept)


FILTERS = {
    "size": human_size,
    "time": local_time,
    "short": short,
    "q": url_part,
    "qpath": url_path,
    "pretty": pretty_json,
}
