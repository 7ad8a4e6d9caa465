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


def inside(root: str, relpath: str, reserved_ok: bool = False) -> Path:
    """The path ``relpath`` names inside the directory whose real path (no link in it) is
    ``root``; :class:`UnsafePath` if it would leave it (a link on the way that resolves
    outside counts, a dangling one too) or, unless ``reserved_ok``, names one of datakeep's
    own files."""
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath:
        raise UnsafePath(f"not a usable relative path: {relpath!r}")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or any(part in {"..", ""} for part in pure.parts) or "\\" in relpath:
        raise UnsafePath(f"{relpath!r} leaves the record directory")
    if not reserved_ok and pure.parts[0] in RESERVED:
        raise UnsafePath(f"{relpath!r} is written by datakeep itself")
    target = os.path.join(root, *pure.parts)
    if len(pure.parts) > 1:
        # a directory on the way may be a link: where the deepest one there really is decides
        # where a new file lands (``root`` itself has no link in it, so a name directly in it
        # needs only the check of the name below)
        existing = os.path.dirname(target)
        while existing != root and not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        real = os.path.realpath(existing)
        if real != root and not real.startswith(root + os.sep):
            raise UnsafePath(f"{relpath!r} leads out of the record directory through a link")
    if os.path.islink(target):
        raise UnsafePath(f"{relpath!r} is a symbolic link")
    return Path(target)
