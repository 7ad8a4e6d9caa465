"""Files in a record directory, read and written by their extension: ``.json`` (a value),
``.jsonl`` (appended one value at a time, read as a list), ``.npy`` (a numpy array, with
the optional numpy), text (``.txt``, ``.md``, ``.log``, ``.csv``, ``.yaml`` ...) and bytes
for the rest. Pickles are never written nor read: loading one runs code from storage.

Writes are atomic (a temporary file, flushed to disk, renamed into place); an append is
one ``write`` of a whole line. A missing file is ``default``; a truncated or corrupt one
raises, so a half-written result is never mistaken for no result.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, InvalidInput

__all__ = ["MISSING", "load", "save", "write_atomically"]

MISSING: Any = object()
_PICKLES = {".p", ".pkl", ".pickle"}
_TEXT = {".txt", ".md", ".log", ".csv", ".tsv", ".yaml", ".yml", ".toml", ".ini", ".py", ".sh"}


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in _PICKLES:
        raise InvalidInput(
            f"{path.name}: pickles are never stored or loaded (loading one runs code); "
            "use .json, .jsonl, .npy or bytes"
        )


def save(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` in the format its extension names (``.jsonl``: append);
    directories on the way are made when missing."""
    _refuse_pickle(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        line = (json.dumps(data, ensure_ascii=False) + "\n").encode()
        _in_new_directories(_append, path, line)
        return
    if suffix == ".json":
        blob = json.dumps(data, ensure_ascii=False, indent=2).encode()
    elif suffix == ".npy":
        buffer = io.BytesIO()
        _numpy().save(buffer, data, allow_pickle=False)
        blob = buffer.getvalue()
    elif suffix in _TEXT and isinstance(data, str):
        blob = data.encode()
    elif isinstance(data, bytes | bytearray | memoryview):
        blob = bytes(data)
    else:
        raise InvalidInput(
            f"{path.name}: {type(data).__name__} cannot be saved as {suffix or 'bytes'}"
        )
    _in_new_directories(write_atomically, path, blob)


def _in_new_directories(write: Callable[[Path, bytes], None], path: Path, blob: bytes) -> None:
    """``write(path, blob)``, making the directories on the way only if it finds one missing
    (most saves go to a directory that exists: no mkdir for them)."""
    try:
        write(path, blob)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, blob)


def _append(path: Path, line: bytes) -> None:
    """One ``write`` of a whole line at the end of ``path``, synced."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path, default: Any = MISSING) -> Any:
    """What :func:`save` wrote to ``path``; ``default`` if there is no such file (else
    :class:`~datakeep.errors.NotFound`)."""
    _refuse_pickle(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        if default is MISSING:
            from ..errors import NotFound

            raise NotFound(f"no file {path.name} in the record") from None
        return default
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(blob)
        if suffix == ".jsonl":
            if blob and not blob.endswith(b"\n"):
                raise ValueError("its last line is cut short")
            return [json.loads(line) for line in blob.splitlines() if line]
        if suffix == ".npy":
            return _numpy().load(io.BytesIO(blob), allow_pickle=False)
    except ValueError as exc:
        raise IntegrityError(f"{path.name} is truncated or corrupt: {exc}") from exc
    return blob.decode() if suffix in _TEXT else blob


def write_atomically(path: Path, blob: bytes, sync: bool = True) -> None:
    """``path`` holding ``blob``, or unchanged: written beside it, synced (unless ``sync``
    is False: for files that can be written again from the catalog), renamed."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise InvalidInput(".npy files need numpy: pip install 'datakeep[numpy]'") from None
    return numpy
