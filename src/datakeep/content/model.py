"""What the content store hands out and takes in: contents, pages, stored and
written blobs, and the sizes that decide how a blob is kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidInput

__all__ = [
    "CHUNK",
    "INLINE_BACKEND",
    "INLINE_KEY",
    "INLINE_MAX",
    "PACKED_MAX",
    "PRIMARY",
    "QUARANTINE",
    "SMALL_FILE",
    "Content",
    "LinkMode",
    "Page",
    "Problem",
    "Router",
    "Stored",
    "VerifyReport",
    "Written",
    "check_tags",
    "with_tags",
]


CHUNK = 1 << 20
# Small contents may live in the index itself (table inline_blobs) rather than as files:
# their placement names this key, which no backend key can equal ('@' is not allowed).
INLINE_KEY = "@inline"
INLINE_BACKEND = "datakeep.inline@v1"
INLINE_MAX = 64 << 10
# Files up to this size are read whole: one read, no staging file, no second copy.
SMALL_FILE = 4 << 20
PACKED_MAX = 64 << 10
"""Files of a tree up to this size are stored in packs (:meth:`ContentStore.write_packs`):
a file of its own costs a create, a link, an unlink and its share of a sync, several
times what writing 64 KiB costs, and dominates the put of many small files."""
PRIMARY = "primary"
QUARANTINE = "quarantine/"
"""Where damaged blobs are set aside: kept for inspection, never swept by gc."""

LinkMode = Literal["copy", "hardlink", "auto"]
Router = Callable[[str, Mapping[str, str]], str]
"""Chooses a blob's key from its digest and tags."""


@dataclass(frozen=True, slots=True)
class Content:
    """A stored piece of content as the index knows it."""

    digest: str
    """``algorithm:hex`` of the bytes."""
    size: int
    """Length in bytes."""
    kind: str
    """``blob``, or ``tree`` for a directory manifest."""
    created_at: float
    """When it was first recorded (seconds since the epoch)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Labels attached with ``tags=`` or :meth:`ContentStore.tag`."""

    def as_json(self) -> dict[str, Any]:
        """As ``--json`` and the web view's API show it (docs/json.md)."""
        return {
            "digest": self.digest,
            "size": self.size,
            "kind": self.kind,
            "created_at": self.created_at,
            "tags": self.tags,
        }


def with_tags(rows: Iterable[Sequence[Any]], digests: Sequence[str]) -> list[Content]:
    """Contents from rows of (digest, size, kind, created_at, tag key, tag value), one row
    per tag (key None for a content without tags), in the order of ``digests``; the
    absent ones left out."""
    by_digest: dict[str, Content] = {}
    for digest, size, kind, created_at, key, value in rows:
        item = by_digest.get(digest)
        if item is None:
            item = by_digest[digest] = Content(digest, size, kind, created_at, {})
        if key is not None:
            item.tags[key] = value
    return [by_digest[d] for d in digests if d in by_digest]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass ``next`` as ``after`` to get the following page."""

    items: list[Content]
    next: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One content found wrong by verify or fsck."""

    digest: str
    """The content affected."""
    error: str
    """What is wrong with it."""
    path: str | None = None
    """Where a tree that was checked with its files names it (``<tree digest>/<path>``)."""


@dataclass(slots=True)
class VerifyReport:
    """The result of re-hashing stored contents."""

    checked: int = 0
    """Contents re-hashed."""
    nbytes: int = 0
    """Bytes re-hashed."""
    problems: list[Problem] = field(default_factory=list)
    """Missing, truncated or corrupted contents; empty when all is well."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Stored:
    """A content as recorded in the index, with where its blob is."""

    digest: str
    size: int
    kind: str
    key: str
    """The blob's key in the keep's durable home."""


@dataclass(frozen=True, slots=True)
class Written:
    """A blob that is stored in the backend and waits to be recorded in the index."""

    digest: str
    size: int
    key: str


def check_tags(tag_map: Mapping[str, str] | None) -> dict[str, str]:
    if not tag_map:
        return {}
    checked = {}
    for key, value in tag_map.items():
        if not isinstance(key, str) or not key or len(key) > 255 or "=" in key:
            raise InvalidInput(f"invalid tag name {key!r}: a non-empty string without '='")
        if not isinstance(value, str):
            raise InvalidInput(f"tag {key!r} must have a string value, not {value!r}")
        checked[key] = value
    return checked
