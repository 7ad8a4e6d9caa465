"""Tag filters as people type them (``datakeep ls --tag``, the web view's search): ``KEY``
(any value), ``KEY=VALUE``, or ``KEY=PREFIX*`` (a value that starts so; a value that
really ends in ``*`` is written ``\\*``), turned into the arguments of
:meth:`Keep.find <datakeep.keep.Keep.find>`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import InvalidInput

__all__ = ["TagFilters", "parse_tag_filters"]


@dataclass(slots=True)
class TagFilters:
    exact: dict[str, str] = field(default_factory=dict)
    """Tags that must have this value (``tags=``)."""
    present: list[str] = field(default_factory=list)
    """Tags that must be there, with any value (``has_tags=``)."""
    prefixes: dict[str, str] = field(default_factory=dict)
    """Tags whose value must start so (``tag_prefixes=``)."""


def parse_tag_filters(values: Iterable[str]) -> TagFilters:
    """The filters ``values`` name; :class:`InvalidInput` for one without a key."""
    found = TagFilters()
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidInput(f"{item!r} names no tag: give KEY, KEY=VALUE or KEY=PREFIX*")
        if not sep:
            found.present.append(key)
        elif value.endswith("\\*"):  # a literal star at the end
            found.exact[key] = value[:-2] + "*"
        elif value.endswith("*"):
            found.prefixes[key] = value[:-1]
        else:
            found.exact[key] = value
    return found
