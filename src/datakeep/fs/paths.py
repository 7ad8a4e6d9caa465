"""``datakeep://`` paths: what a URL names, checked before anything is looked up.

After the protocol, a path is ``/``-separated parts whose first part says where to look:

- ``blake3:<hex>`` (or a unique prefix of 6+ hex digits, with or without the algorithm,
  as the command line takes it): a content; for a tree, the parts after it are a path
  inside the tree;
- ``tag/<key>=<value>``: the newest content with that tag (``%2F`` for a ``/`` in a value);
- ``ws/<workspace>@<snapshot>/<resource>``: a resource of a workspace snapshot (named by
  tag, hash or hash prefix);
- ``files/<namespace>.../<name>``: a file of the keep's file store.

``..``, ``.``, empty parts (an absolute path inside a tree, ``a//b``) and NUL are refused
with :class:`~datakeep.errors.InvalidPath` before any lookup: a URL cannot name anything
outside what it starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..errors import InvalidPath

__all__ = ["NAMESPACES", "KeepPath", "parse_path", "tag_name", "tag_part"]

NAMESPACES = ("files", "tag", "ws")
"""The first parts that are not digests."""


@dataclass(frozen=True, slots=True)
class KeepPath:
    """A checked path: its parts, and the path as fsspec names it (no protocol, no
    leading or trailing ``/``)."""

    name: str
    parts: tuple[str, ...]

    def child(self, part: str) -> str:
        """The name of ``part`` inside this path."""
        return f"{self.name}/{part}" if self.name else part


def parse_path(path: str) -> KeepPath:
    """Split and check a path already stripped of its protocol."""
    if "\x00" in path:
        raise InvalidPath(f"NUL in datakeep path {path!r}")
    name = path.strip("/") if path.startswith("/") else path.rstrip("/")
    if not name:
        return KeepPath("", ())
    parts = tuple(name.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidPath(
                f"refused datakeep path {path!r}: no '..', '.', empty parts or absolute paths"
            )
    return KeepPath(name, parts)


def tag_part(part: str) -> tuple[str, str]:
    """(key, value) of a ``tag/<key>=<value>`` part, percent-decoded."""
    key, sep, value = unquote(part).partition("=")
    if not sep or not key:
        raise InvalidPath(f"a tag path is tag/<key>=<value>, not tag/{part}")
    return key, value


def tag_name(key: str, value: str) -> str:
    """The part naming a tag, encoded so that :func:`tag_part` reads it back."""
    return quote(f"{key}={value}", safe="=:@+,;")
