"""Reading a directory for a tree: every entry with its stat, checked, and a fingerprint.

Kept apart from the put (:mod:`.put`) because it needs nothing of the index: the command
line recognises an unchanged directory with it before loading SQLAlchemy
(:mod:`datakeep.trees.unchanged`).
"""

from __future__ import annotations

import marshal
import os
import posixpath
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ..digest import new_hasher
from ..errors import InvalidPath

__all__ = [
    "DirectoryScan",
    "Scanned",
    "check_link_target",
    "check_resolves_inside",
    "fingerprint",
    "scan",
    "scan_directory",
]

_SKIP_NAMES = frozenset({".datakeep"})  # never store a keep inside its own tree


def check_link_target(path: str, target: str) -> None:
    """A link may only point inside its tree: relative, never climbing above the root."""
    if not target or target.startswith("/") or "\x00" in target:
        raise InvalidPath(f"symbolic link {path!r} -> {target!r} points outside the tree")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise InvalidPath(f"symbolic link {path!r} -> {target!r} points outside the tree")


@dataclass(slots=True)
class Scanned:
    """One entry found in a directory: a file, a link or an empty directory."""

    path: str
    kind: str
    stat: os.stat_result
    target: str | None = None  # of a link

    @property
    def size(self) -> int:
        if self.kind == "f":
            return self.stat.st_size
        return len(self.target.encode()) if self.target is not None else 0

    @property
    def mode(self) -> int:
        return 0 if self.kind == "l" else stat.S_IMODE(self.stat.st_mode) & 0o777


def check_resolves_inside(root: Path, link: Path) -> None:
    """Follow a link's whole chain (links through links) and refuse one leaving ``root``."""
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(link)
    if resolved != real_root and not resolved.startswith(real_root + os.sep):
        raise InvalidPath(f"symbolic link {link} resolves outside {root}")


def scan(root: Path) -> list[Scanned]:
    found: list[Scanned] = []
    stack = [(os.fspath(root), "")]
    while stack:
        directory, rel = stack.pop()
        try:
            with os.scandir(directory) as it:
                children = [e for e in it if e.name not in _SKIP_NAMES]
        except PermissionError:
            raise InvalidPath(f"cannot read directory {directory}: permission denied") from None
        if not children and rel:
            found.append(Scanned(rel[:-1], "d", os.lstat(directory)))
        for entry in children:
            path = rel + entry.name
            try:
                path.encode()
            except UnicodeEncodeError:
                raise InvalidPath(f"file name is not valid UTF-8: {entry.path!r}") from None
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, path + "/"))
            elif stat.S_ISREG(st.st_mode):
                found.append(Scanned(path, "f", st))
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(entry.path)
                check_link_target(path, target)
                check_resolves_inside(root, Path(entry.path))
                found.append(Scanned(path, "l", st, target))
            else:
                raise InvalidPath(f"cannot store {entry.path}: not a file, directory or link")
    return found


def fingerprint(scanned: list[Scanned], algorithm: str) -> bytes:
    """Every entry's path, kind, identity and change stamps, in one hashable blob: equal
    fingerprints mean nothing in the directory changed (as the stat cache decides)."""
    listing = [
        (
            s.path,
            s.kind,
            s.stat.st_mode,
            s.stat.st_size,
            s.stat.st_dev,
            s.stat.st_ino,
            s.stat.st_mtime_ns,
            s.stat.st_ctime_ns,
            s.target,
        )
        for s in scanned
    ]
    hasher = new_hasher("blake3")
    hasher.update(marshal.dumps((algorithm, listing)))
    return bytes.fromhex(hasher.hexdigest())


@dataclass(frozen=True, slots=True)
class DirectoryScan:
    """A directory read once, to be reused by whoever needs it next in the same command."""

    root: str
    """The directory's real path."""
    checked_ns: int
    """When the reading began: entries changed within the racy window of it are suspect."""
    entries: list[Scanned]
    algorithm: str
    """The keep's algorithm, part of the fingerprint."""
    fingerprint: bytes


def scan_directory(root: Path, algorithm: str) -> DirectoryScan:
    checked_ns = time.time_ns()  # before any entry is read: see the racy rule in statcache
    entries = scan(root)
    return DirectoryScan(
        os.path.realpath(root), checked_ns, entries, algorithm, fingerprint(entries, algorithm)
    )
