"""``datakeep.memory@v1``: blobs in a dict, for tests and throw-away keeps."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar

from ..errors import NotFound
from ._protocol import BlobInfo, check_key

__all__ = ["MemoryBackend"]


class _StagedBuffer:
    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._buffer: io.BytesIO | None = io.BytesIO()

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self._buffer is not None, "write after commit or abort"
        self._buffer.write(data)

    def commit(self, key: str) -> bool:
        assert self._buffer is not None, "commit after commit or abort"
        data, self._buffer = self._buffer.getvalue(), None
        return self._backend.create(key, data)

    def abort(self) -> None:
        self._buffer = None

    def __enter__(self) -> _StagedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class MemoryBackend:
    """Blobs held in memory; lost when the process ends."""

    name: ClassVar[str] = "datakeep.memory@v1"

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._stored_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._blobs)} blobs)"

    def _get(self, key: str) -> bytes:
        try:
            return self._blobs[check_key(key)]
        except KeyError:
            raise NotFound(f"no blob {key!r} in memory") from None

    def create(self, key: str, data: bytes) -> bool:
        check_key(key)
        with self._lock:
            if key in self._blobs:
                return False
            self._blobs[key] = bytes(data)
            self._stored_at[key] = time.time()
            return True

    def stage(self) -> _StagedBuffer:
        return _StagedBuffer(self)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        reader = io.BytesIO(self._get(key))
        reader.seek(offset)
        return reader

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._get(key)[start:end]

    def head(self, key: str) -> BlobInfo:
        return BlobInfo(key, len(self._get(key)), self._stored_at[key])

    def delete(self, key: str) -> bool:
        with self._lock:
            self._stored_at.pop(check_key(key), None)
            return self._blobs.pop(key, None) is not None

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        with self._lock:
            items = [
                BlobInfo(k, len(v), self._stored_at[k])
                for k, v in self._blobs.items()
                if k.startswith(prefix)
            ]
        yield from items

    def config(self) -> dict[str, Any]:
        return {}
