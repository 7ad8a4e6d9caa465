"""The layout of a record directory, and paths inside it, checked before anything is written
or read: no ``..``, no absolute path, no NUL, and no symbolic link on the way that leads out."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import UnsafePath

__all__ = ["RECORD_FORMAT", "RESERVED", "inside"]

RECORD_FORMAT = "datakeep.record@v1"
"""What the sentinel file ``.datakeep-record`` holds."""

RESERVED = frozenset({".datakeep-record", "id.json", "model.json", "updated_at", "related"})
"""Names at the top of a record directory that datakeep writes itself."""


def inside(root: Path, relpath: str, reserved_ok: bool = False) -> Path:
    """The path ``relpath`` names inside the directory ``root``; :class:`UnsafePath` if it
    would leave it (a link on the way that resolves outside counts) or, unless
    ``reserved_ok``, names one of datakeep's own files."""
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath:
        raise UnsafePath(f"not a usable relative path: {relpath!r}")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or any(part in {"..", ""} for part in pure.parts) or "\\" in relpath:
        raise UnsafePath(f"{relpath!r} leaves the record directory")
    if not reserved_ok and pure.parts[0] in RESERVED:
        raise UnsafePath(f"{relpath!r} is written by datakeep itself")
    target = root.joinpath(*pure.parts)
    real_root = os.path.realpath(root)
    # the deepest existing ancestor decides where a new file really lands
    existing = target
    while not existing.exists() and existing != root:
        existing = existing.parent
    real = os.path.realpath(existing)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafePath(f"{relpath!r} leads out of the record directory through a link")
    if target.is_symlink():
        raise UnsafePath(f"{relpath!r} is a symbolic link")
    return target
