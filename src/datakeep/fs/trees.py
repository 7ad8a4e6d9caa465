"""A stored tree as directories: its manifest's entries by directory, and the symbolic
links inside it followed without leaving it."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from ..errors import InvalidPath, NotFound
from ..trees.format import TreeEntry

__all__ = ["DIRECTORY", "TreeIndex"]

DIRECTORY = None
"""What :meth:`TreeIndex.lookup` returns for a directory."""
_MAX_LINKS = 40  # as the kernel's ELOOP limit
_MISSING = object()


class TreeIndex:
    """The entries of one tree manifest, by directory (``""`` is the tree's root)."""

    def __init__(self, digest: str, entries: list[TreeEntry]) -> None:
        self.digest = digest
        self.dirs: dict[str, dict[str, TreeEntry | None]] = {"": {}}
        for entry in entries:
            self._add_parents(entry.path)
            if entry.kind == "d":
                self.dirs.setdefault(entry.path, {})
            else:
                parent, _, name = entry.path.rpartition("/")
                self.dirs[parent][name] = entry

    def _add_parents(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        while True:
            if parent not in self.dirs:
                self.dirs[parent] = {}
            self.dirs[parent].setdefault(name, DIRECTORY)
            if not parent:
                return
            parent, _, name = parent.rpartition("/")

    def lookup(
        self, path: str, link_target: Callable[[TreeEntry], str]
    ) -> tuple[str, TreeEntry | None]:
        """(the real path, the file there or :data:`DIRECTORY`) of ``path``, its symbolic
        links followed inside the tree only; :class:`NotFound` if the tree has no such
        path. ``link_target`` reads a link's target (the content of its entry)."""
        pending = path.split("/") if path else []
        current = ""  # the real directory reached so far
        followed = 0
        while pending:
            name = pending.pop(0)
            child = self.dirs[current].get(name, _MISSING)
            here = f"{current}/{name}" if current else name
            if child is _MISSING:
                raise NotFound(f"no {path!r} in tree {self.digest}")
            if child is DIRECTORY:
                current = here
                continue
            assert isinstance(child, TreeEntry)
            if child.kind == "l":
                followed += 1
                if followed > _MAX_LINKS:
                    raise InvalidPath(f"too many symbolic links in {path!r} of tree {self.digest}")
                resolved = _inside(current, link_target(child), here, self.digest)
                pending[:0] = resolved.split("/") if resolved else []
                current = ""
                continue
            if pending:
                raise NotFound(f"{here!r} is a file, not a directory, in tree {self.digest}")
            return here, child
        return current, DIRECTORY


def _inside(directory: str, target: str, link: str, tree: str) -> str:
    """The path a link's ``target`` names, relative to the tree's root; a target that
    is absolute or leaves the tree is refused."""
    joined = posixpath.normpath(posixpath.join(directory, target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        raise InvalidPath(f"symbolic link {link!r} in tree {tree} points outside it: {target!r}")
    return "" if joined == "." else joined
