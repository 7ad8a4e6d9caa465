"""The state of a resource's files, read from its directory or from a stored tree, and
what differs between two states.

A state maps each path to ``(kind, mode, digest)``. Read from a directory, the digests
come from the keep's stat cache, and only files it cannot vouch for are hashed (then
remembered): a directory whose every entry is as when its tree was last stored is
answered by one lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..digest import hash_bytes, hash_file
from ..keep import Keep
from ..trees.format import TreeEntry, decode_tree, encode_tree
from ..trees.scan import scan_directory
from .model import SourceChanges

__all__ = [
    "State",
    "compare",
    "directory_state",
    "same",
    "shared_modes",
    "tree_state",
    "version_in",
]

State = dict[str, tuple[str, int, str | None]]

# Marks the mode of a read-only file with other hard links: a hardlinked export or restore
# shares the keep's read-only blob, so its write bits say nothing about a change.
_SHARED = 1 << 20


def same(now: tuple[str, int, str | None], then: tuple[str, int, str | None]) -> bool:
    """Whether an entry read from a directory is the entry of a tree."""
    if now == then:
        return True
    if not now[1] & _SHARED:
        return False
    return (now[0], now[2], now[1] & 0o555) == (then[0], then[2], then[1] & 0o555)


def tree_state(keep: Keep, tree: str | None) -> State:
    if tree is None:
        return {}
    return {e.path: (e.kind, e.mode, e.digest) for e in decode_tree(keep.get(tree), keep.algorithm)}


def directory_state(keep: Keep, root: Path, known_tree: str | None = None) -> State | str:
    """The state of ``root``, or ``known_tree`` itself when the directory is exactly that
    tree (then the stat cache remembers it, so the next look is one lookup)."""
    if not root.is_dir():
        return {}
    scanned = scan_directory(root, keep.algorithm)
    cache = keep.stat_cache
    remembered = cache.tree_of(scanned.root, scanned.fingerprint)
    if known_tree is not None and remembered is not None and remembered[0] == known_tree:
        return known_tree
    files = [s for s in scanned.entries if s.kind == "f"]
    trusted = cache.lookup([s.stat for s in files], keep.algorithm)
    digests = dict(zip((s.path for s in files), trusted, strict=True))
    hashed = []
    state: State = {}
    for s in scanned.entries:
        digest: str | None
        if s.kind == "f":
            digest = digests[s.path]
            if digest is None:
                digest = hash_file(os.path.join(root, s.path), keep.algorithm)
                hashed.append((s.stat, digest))
        elif s.kind == "l":
            digest = hash_bytes((s.target or "").encode(), keep.algorithm)
        else:
            digest = None
        mode = s.mode
        if s.kind == "f" and s.stat.st_nlink > 1 and not mode & 0o222:
            mode |= _SHARED
        state[s.path] = (s.kind, mode, digest)
    cache.store(hashed, scanned.checked_ns)
    if known_tree is not None and not compare(tree_state(keep, known_tree), state):
        newest = max(
            (max(s.stat.st_mtime_ns, s.stat.st_ctime_ns) for s in scanned.entries), default=0
        )
        size = keep.info(known_tree).size
        cache.remember_tree(
            scanned.root, scanned.fingerprint, known_tree, size, newest, scanned.checked_ns
        )
        return known_tree
    return state


def shared_modes(keep: Keep, tree: str, before: str) -> str:
    """``tree`` with the mode its files had in ``before`` where they are the same file
    but read-only: shared with the keep by a hardlinked restore, whose read-only mode is
    the keep's, not the file's. The tree itself if no mode needed it."""
    then = {e.path: e for e in decode_tree(keep.get(before), keep.algorithm)}
    entries = decode_tree(keep.get(tree), keep.algorithm)
    fixed = []
    for e in entries:
        old = then.get(e.path)
        if e.kind == "f" and not e.mode & 0o222 and old is not None and old.digest == e.digest:
            e = TreeEntry(e.path, e.kind, old.mode, e.size, e.digest)
        fixed.append(e)
    if fixed == entries:
        return tree
    written = keep.store.write_bytes(encode_tree(fixed))
    keep.store.record([written], kind="tree")
    return written.digest


def compare(old: State, new: State) -> SourceChanges:
    changes = SourceChanges()
    for path, entry in new.items():
        if path not in old:
            changes.added.append(path)
        elif not same(entry, old[path]):
            changes.changed.append(path)
    changes.removed = [path for path in old if path not in new]
    for found in (changes.added, changes.changed, changes.removed):
        found.sort()
    return changes


def version_in(keep: Keep, tree: str, subpath: str) -> str | None:
    """The version of ``subpath`` inside ``tree``: the tree itself for the whole resource,
    a file's digest, or for a directory the digest of its entries as a tree of their own
    (never stored); None if the tree has nothing there."""
    if not subpath:
        return tree
    prefix = subpath + "/"
    inner = []
    for e in decode_tree(keep.get(tree), keep.algorithm):
        if e.path == subpath:  # a file or a link; or an empty directory, as an empty tree
            return e.digest if e.kind != "d" else hash_bytes(encode_tree([]), keep.algorithm)
        if e.path.startswith(prefix):
            inner.append(TreeEntry(e.path[len(prefix) :], e.kind, e.mode, e.size, e.digest))
    return hash_bytes(encode_tree(inner), keep.algorithm) if inner else None
