"""What differs between two trees: files added, removed, changed in content, and changed
in mode only, by path (as ``restic diff`` and ``dvc diff`` report them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..content import ContentStore
from ..errors import InvalidInput
from .format import TreeEntry, decode_tree

__all__ = ["TreeDiff", "diff_trees"]


@dataclass(slots=True)
class TreeDiff:
    added: list[TreeEntry] = field(default_factory=list)
    removed: list[TreeEntry] = field(default_factory=list)
    changed: list[tuple[TreeEntry, TreeEntry]] = field(default_factory=list)
    """(before, after) of entries whose content or kind changed."""
    mode_changed: list[tuple[TreeEntry, TreeEntry]] = field(default_factory=list)
    """(before, after) of entries whose permission bits alone changed."""

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.mode_changed)


def diff_trees(store: ContentStore, old: str, new: str) -> TreeDiff:
    """How tree ``new`` differs from tree ``old`` (both verified as they are read)."""
    for digest in (old, new):
        if store.info(digest).kind != "tree":
            raise InvalidInput(f"{digest} is not a tree")
    before = {e.path: e for e in decode_tree(store.get(old), store.algorithm)}
    after = {e.path: e for e in decode_tree(store.get(new), store.algorithm)}
    found = TreeDiff()
    for path, entry in sorted(after.items()):
        was = before.get(path)
        if was is None:
            found.added.append(entry)
        elif (was.kind, was.digest) != (entry.kind, entry.digest):
            found.changed.append((was, entry))
        elif was.mode != entry.mode:
            found.mode_changed.append((was, entry))
    found.removed = [e for path, e in sorted(before.items()) if path not in after]
    return found
