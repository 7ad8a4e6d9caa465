"""Walking a tree like a file browser: one directory level at a time, paged by name, and
the entry a path names. A path comes from a URL, so it is checked before anything is
looked up, and it is only ever looked up among the tree's own entries: no path in a URL
reaches a file system.

A tree is immutable (its digest names its bytes), so its decoded manifest is cached by
digest: a 10,000-file tree is read and verified once, then each page is a bisection.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, InvalidPath, NotFound
from ..keep import Keep
from ..trees.format import TreeEntry, check_relative_path, decode_tree

__all__ = ["DIR_PAGE", "TreeCache", "check_url_path", "tree_page"]

DIR_PAGE = 200
_CACHED_TREES = 16
_PAST = "\U0010ffff"
"""Sorts after any path character: ``prefix + _PAST`` bounds everything under ``prefix``."""


@dataclass(frozen=True, slots=True)
class _Manifest:
    entries: list[TreeEntry]
    paths: list[str]
    """The entries' paths, sorted (as a manifest lists them), for bisection."""


class TreeCache:
    """Decoded manifests of the trees last shown, by digest (verified when read)."""

    def __init__(self, keep: Keep, size: int = _CACHED_TREES) -> None:
        self._keep = keep
        self._size = size
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, _Manifest] = OrderedDict()

    def get(self, digest: str) -> _Manifest:
        with self._lock:
            found = self._trees.get(digest)
            if found is not None:
                self._trees.move_to_end(digest)
                return found
        entries = decode_tree(self._keep.get(digest), self._keep.algorithm)  # sorted by path
        manifest = _Manifest(entries, [e.path for e in entries])
        with self._lock:
            self._trees[digest] = manifest
            while len(self._trees) > self._size:
                self._trees.popitem(last=False)
        return manifest


def check_url_path(path: str) -> str:
    """A path inside a tree as a URL gives it: relative, no ``.``, ``..``, empty part,
    backslash or NUL; '' for the tree's root. :class:`InvalidPath` otherwise."""
    path = path.strip("/") if path in ("", "/") else path
    if path == "":
        return ""
    if "\\" in path:
        raise InvalidPath(f"unsafe path in tree: {path!r}")
    return check_relative_path(path)


def _entry_json(entry: TreeEntry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "kind": entry.kind,
        "mode": format(entry.mode, "03o"),
        "size": entry.size,
        "digest": entry.digest,
    }


def find_entry(cache: TreeCache, tree: str, path: str) -> TreeEntry | None:
    """The entry at ``path``, or None if ``path`` is a directory or absent."""
    manifest = cache.get(tree)
    i = bisect.bisect_left(manifest.paths, path)
    if i < len(manifest.paths) and manifest.paths[i] == path:
        return manifest.entries[i]
    return None


def tree_page(
    keep: Keep,
    cache: TreeCache,
    name: str,
    path: str,
    after: str | None,
    limit: int = DIR_PAGE,
) -> dict[str, Any]:
    """The directory ``path`` of tree ``name``: its subdirectories and entries, by name,
    ``limit`` at a time after the name ``after``; or the one entry ``path`` names."""
    path = check_url_path(path)
    digest = keep.store.resolve(name)
    info = keep.info(digest)
    if info.kind != "tree":
        raise InvalidInput(f"{info.digest} is a blob, not a tree")
    crumbs = _breadcrumbs(path)
    if path:
        entry = find_entry(cache, info.digest, path)
        if entry is not None:
            return {
                "tree": info.digest,
                "path": path,
                "crumbs": crumbs,
                "entry": _entry_json(entry),
            }
    manifest = cache.get(info.digest)
    prefix = f"{path}/" if path else ""
    children: list[dict[str, Any]] = []
    more = None
    # children come in manifest order, where a directory ``a`` sorts as ``a/``: the page
    # token is that key of the last child shown (a directory's skips all it holds)
    if not after:
        i = bisect.bisect_left(manifest.paths, prefix)
    elif after.endswith("/"):
        i = bisect.bisect_left(manifest.paths, prefix + after + _PAST)
    else:
        i = bisect.bisect_right(manifest.paths, prefix + after)
    while i < len(manifest.paths) and manifest.paths[i].startswith(prefix):
        if len(children) == limit:
            last = children[-1]
            more = last["name"] + ("/" if last["kind"] == "dir" else "")
            break
        rest = manifest.paths[i][len(prefix) :]
        child, slash, _ = rest.partition("/")
        if slash:
            children.append({"name": child, "kind": "dir", "path": prefix + child})
            i = bisect.bisect_left(manifest.paths, prefix + child + "/" + _PAST)
            continue
        children.append({"name": child, **_entry_json(manifest.entries[i])})
        i += 1
    if path and not children and after is None:
        raise NotFound(f"no {path} in tree {info.digest}")
    return {
        "tree": info.digest,
        "path": path,
        "crumbs": crumbs,
        "entries": children,
        "next": more,
        "files": len(manifest.entries),
    }


def _breadcrumbs(path: str) -> list[dict[str, str]]:
    parts = path.split("/") if path else []
    return [{"name": p, "path": "/".join(parts[: i + 1])} for i, p in enumerate(parts)]
