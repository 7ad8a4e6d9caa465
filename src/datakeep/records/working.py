"""Records' working directories (``records/<uuid>`` in the keep): made with datakeep's header
files and the sentinel ``.datakeep-record``, written last, which says "complete"; and their
real paths, where every check of a path inside one starts (:func:`~.paths.inside`).

A directory without its sentinel is never taken for a record: it is completed again from
the catalog, every header file rewritten whole. So a new record's header files are written
straight into its new directory, and only the sentinel goes through a temporary file and a
rename (an empty sentinel must never be seen). None of them is synced: the catalog holds
all of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .formats import write_atomically
from .model import RecordInfo
from .paths import RECORD_FORMAT

__all__ = ["SENTINEL", "WorkingDirectories", "header_files"]

SENTINEL = ".datakeep-record"
_SENTINEL_BYTES = f"{RECORD_FORMAT}\n".encode()
_REMEMBERED = 4096
"""Real paths kept at most; then forgotten all at once (cheap, and safe across threads)."""


def header_files(info: RecordInfo) -> list[tuple[str, bytes]]:
    """``id.json`` and ``model.json`` of the record, as the catalog's row has them."""
    header = {
        "uuid": info.uuid,
        "kind": info.kind,
        "identity": info.identity,
        "parent": info.parent,
        "predicate": info.predicate,
        "label": info.label,
        "created_at": info.created_at,
    }
    return [
        ("id.json", json.dumps(header, indent=2, sort_keys=True).encode()),
        ("model.json", json.dumps(info.config, indent=2, sort_keys=True).encode()),
    ]


class WorkingDirectories:
    """The working directories under ``base`` (the keep's ``records/``), by checked uuid."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._real_base: str | None = None
        self._real: dict[str, str] = {}  # uuid -> real path of its complete directory

    def complete(self, uuid: str) -> str | None:
        """The real path of the record's directory if its sentinel is there, else None."""
        real = self._real.get(uuid)
        if real is not None and os.path.exists(os.path.join(real, SENTINEL)):
            return real
        root = self.base / uuid
        if not os.path.exists(root / SENTINEL):
            self._real.pop(uuid, None)
            return None
        return self._remember(uuid, os.path.realpath(root))

    def make(self, info: RecordInfo) -> str:
        """The directory of a record just inserted, made with its header files; its real
        path. Each header file is created in place (never over an existing one), so when
        another thread or process completes the same record at the same moment, this one
        stops and completes it the safe way (:meth:`materialize`) instead."""
        root = self.base / info.uuid
        try:
            try:
                os.mkdir(root)
            except FileNotFoundError:  # the keep's first record
                self.base.mkdir(parents=True, exist_ok=True)
                os.mkdir(root)
            for name, blob in header_files(info):
                _write_new(root / name, blob)
        except FileExistsError:
            return self.materialize(info)
        write_atomically(root / SENTINEL, _SENTINEL_BYTES, sync=False)
        if self._real_base is None:
            self._real_base = os.path.realpath(self.base)
        # made by the mkdir above: a directory, not a link, in the real records/
        return self._remember(info.uuid, os.path.join(self._real_base, info.uuid))

    def materialize(self, info: RecordInfo) -> str:
        """Complete the record's directory from its catalog row: every header file written
        again whole, atomically (a crash may have cut one short), then the sentinel."""
        root = self.base / info.uuid
        root.mkdir(parents=True, exist_ok=True)
        for name, blob in header_files(info):
            write_atomically(root / name, blob, sync=False)
        write_atomically(root / SENTINEL, _SENTINEL_BYTES, sync=False)
        return self._remember(info.uuid, os.path.realpath(root))

    def forget(self, uuid: str) -> None:
        self._real.pop(uuid, None)

    def _remember(self, uuid: str, real: str) -> str:
        if len(self._real) >= _REMEMBERED:
            self._real.clear()
        self._real[uuid] = real
        return real


def _write_new(path: Path, blob: bytes) -> None:
    """Create ``path`` holding ``blob``; FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
