"""A small directory kept in the index itself: its files and its manifest as inline
contents, recorded in the caller's transaction. No blob file is written and nothing but
the index is flushed, so a directory of a few small files (an experiment record) costs
one transaction, not a pack, a manifest blob and their flushes. The manifest is the one
:func:`~datakeep.trees.put.put_tree` writes for the same directory (tested)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..content import INLINE_MAX, ContentStore
from ..content.rows import Execute
from ..content.sources import check_unchanged, read_whole, source_file
from ..digest import hash_bytes
from .format import TreeEntry, encode_tree
from .scan import scan

__all__ = ["SmallTree", "read_small_tree"]


@dataclass(frozen=True, slots=True)
class SmallTree:
    """A directory read whole: its manifest and its files' bytes."""

    manifest: bytes
    files: list[bytes]

    def record(self, store: ContentStore, execute: Execute) -> str:
        """Record the files and the manifest (as a tree) in the caller's transaction (the
        caller holds a shared lease); the tree's digest."""
        store.record_inline(execute, self.files)
        (tree,) = store.record_inline(execute, [self.manifest], kind="tree")
        return tree


def read_small_tree(store: ContentStore, root: Path) -> SmallTree | None:
    """``root`` read whole, or None if it holds a symbolic link or a file (or manifest)
    larger than an inline content may be: such a directory takes the full tree put. Its
    entries only: neither the fingerprint nor the real path a full put's scan keeps."""
    entries: list[TreeEntry] = []
    files: list[bytes] = []
    for item in scan(root):
        digest = None
        if item.kind == "l" or item.size > INLINE_MAX:
            return None
        if item.kind == "f":
            path = os.path.join(root, item.path)
            with source_file(path, item.stat) as (fd, before):
                data = read_whole(fd, before.st_size)
                check_unchanged(fd, before, path)
            digest = hash_bytes(data, store.algorithm)
            files.append(data)
        entries.append(TreeEntry(item.path, item.kind, item.mode, item.size, digest))
    manifest = encode_tree(entries)
    return SmallTree(manifest, files) if len(manifest) <= INLINE_MAX else None
