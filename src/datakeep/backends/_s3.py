"""``datakeep.s3@v1``: blobs as objects in an S3-compatible bucket, through obstore.

* Create-only: blobs are one ``PUT`` with ``If-None-Match: *``; a blob staged past
  :data:`STAGE_IN_MEMORY` streams as a multipart upload to a staging object, then is
  copied into place with a conditional multipart copy (no 5 GB copy limit) and the staging
  object removed. Either way an existing key is never overwritten.
* Keys live under ``prefix`` in ``bucket``; the stored config holds no credentials. They
  come from the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``,
  ``AWS_ENDPOINT_URL``...), as obstore reads them; ``endpoint`` selects an S3-compatible
  server (MinIO, Ceph, R2...).
* Transient errors are retried with exponential backoff by obstore's client.
* obstore's errors become datakeep's in :func:`_translated`, the one place that does.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from ..errors import NotFound, StorageError
from ._protocol import BlobInfo, check_key

if TYPE_CHECKING:
    from obstore.store import RetryConfig

__all__ = ["S3Backend"]

STAGE_IN_MEMORY = 128 << 20
"""Staged bytes are buffered up to here and sent as one create-only PUT; a larger blob
streams as a multipart upload to a staging object, then is copied into place (the copy
is server-side on S3, but twice the work for an emulator)."""
_STAGING = "staging/"
_RETRY: RetryConfig = {
    "max_retries": 5,
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=5),
        "base": 2,
    },
    "retry_timeout": timedelta(minutes=3),
}


@contextmanager
def _translated(action: str, key: str) -> Iterator[None]:
    """obstore's errors as datakeep's: NotFound, or StorageError with the cause."""
    try:
        yield
    except FileNotFoundError as exc:  # obstore's NotFoundError is one
        if "NoSuchBucket" in str(exc) or action in ("write", "list"):
            raise StorageError(f"S3 could not {action} {key!r}: the bucket does not exist") from exc
        raise NotFound(f"no blob {key!r} in S3 ({action})") from None
    except (PermissionDeniedError, UnauthenticatedError) as exc:
        # obstore's messages run on with the server's XML: one line is what a user reads
        raise StorageError(
            f"S3 refused to {action} {key!r}: check the credentials ({_first_line(exc)})"
        ) from exc
    except (AlreadyExistsError, PreconditionError):
        raise
    except Exception as exc:  # obstore.exceptions.BaseError and its transport errors
        if isinstance(exc, StorageError | NotFound):
            raise
        why = "the bucket does not exist" if "NoSuchBucket" in str(exc) else _first_line(exc)
        raise StorageError(f"S3 could not {action} {key!r}: {why}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class S3Backend:
    """Blobs in ``s3://bucket/prefix``."""

    name: ClassVar[str] = "datakeep.s3@v1"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        stage_in_memory: int = STAGE_IN_MEMORY,
    ) -> None:
        self.bucket = bucket
        self.stage_in_memory = stage_in_memory
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.region = region
        options: dict[str, Any] = {}
        if endpoint is not None:
            options["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                options["client_options"] = {"allow_http": True}
        if region is not None:
            options["region"] = region
        self._store = S3Store(
            bucket,
            prefix=self.prefix or None,
            copy_if_not_exists="multipart",
            retry_config=_RETRY,
            **options,
        )

    def __repr__(self) -> str:
        return f"S3Backend(s3://{self.bucket}/{self.prefix})"

    # -- the protocol ----------------------------------------------------------------------
    def create(self, key: str, data: bytes) -> bool:
        check_key(key)
        try:
            with _translated("write", key):
                obstore.put(self._store, key, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def stage(self) -> _StagedObject:
        return _StagedObject(self)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        check_key(key)
        with _translated("read", key):
            result = obstore.get(
                self._store, key, options={"range": {"offset": offset}} if offset else None
            )
        return io.BufferedReader(_ChunkReader(result.stream(), key), 1 << 20)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        check_key(key)
        if end is None:
            end = self.head(key).size
        if end <= start:
            self.head(key)  # still NotFound for a missing key
            return b""
        try:
            with _translated("read", key):
                return bytes(obstore.get_range(self._store, key, start=start, end=end))
        except StorageError as exc:
            # a range past the end is empty, as a slice is (S3 answers 416)
            if "InvalidRange" in str(exc.__cause__):
                return b""
            raise

    def head(self, key: str) -> BlobInfo:
        check_key(key)
        with _translated("stat", key):
            meta = obstore.head(self._store, key)
        return BlobInfo(key, meta["size"], meta["last_modified"].timestamp())

    def delete(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        with _translated("delete", key):
            obstore.delete(self._store, key)
        return True

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        # obstore lists whole path segments; the contract is a plain string prefix
        base = prefix.rpartition("/")[0]
        if base:
            check_key(base)
        with _translated("list", prefix):
            for batch in obstore.list(self._store, base or None, chunk_size=1000):
                for meta in batch:
                    key = meta["path"]
                    if key.startswith(prefix) and not key.startswith(_STAGING):
                        yield BlobInfo(key, meta["size"], meta["last_modified"].timestamp())

    def config(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "endpoint": self.endpoint,
            "region": self.region,
        }

    # -- staging, used by _StagedObject ------------------------------------------------------
    def _publish_staged(self, staging: str, key: str) -> bool:
        """Copy a staged object into place unless ``key`` exists, then drop the staging."""
        try:
            with _translated("write", key):
                obstore.copy(self._store, staging, key, overwrite=False)
        except (AlreadyExistsError, PreconditionError):
            return False
        finally:
            with _translated("delete", staging):
                obstore.delete(self._store, staging)
        return True


class _StagedObject:
    """Buffers small blobs in memory; past :data:`STAGE_IN_MEMORY`, streams the rest as a
    multipart upload to a staging object, so large blobs never sit in memory whole."""

    def __init__(self, backend: S3Backend) -> None:
        self._backend = backend
        self._buffer: bytearray | None = bytearray()
        self._writer: Any = None
        self._staging = f"{_STAGING}{secrets.token_hex(16)}"

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self._buffer is not None, "write after commit or abort"
        self._buffer += data
        if len(self._buffer) >= self._backend.stage_in_memory:
            if self._writer is None:
                with _translated("write", self._staging):
                    self._writer = obstore.open_writer(self._backend._store, self._staging)
            with _translated("write", self._staging):
                self._writer.write(bytes(self._buffer))
            self._buffer.clear()

    def commit(self, key: str) -> bool:
        check_key(key)
        assert self._buffer is not None, "commit after commit or abort"
        buffer, self._buffer = self._buffer, None
        if self._writer is None:
            return self._backend.create(key, bytes(buffer))
        with _translated("write", self._staging):
            if buffer:
                self._writer.write(bytes(buffer))
            self._writer.close()
        self._writer = None
        return self._backend._publish_staged(self._staging, key)

    def abort(self) -> None:
        self._buffer = None
        if self._writer is not None:
            # obstore's writer cannot abort: finish the staging object, then remove it.
            # Nothing was ever published under a real key.
            writer, self._writer = self._writer, None
            try:
                writer.close()
                obstore.delete(self._backend._store, self._staging)
            except Exception:
                pass  # an incomplete upload left behind expires by bucket lifecycle policy

    def __enter__(self) -> _StagedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class _ChunkReader(io.RawIOBase):
    """A raw binary reader over obstore's stream of byte chunks."""

    def __init__(self, chunks: Any, key: str) -> None:
        self._chunks = chunks
        self._key = key
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            with _translated("read", self._key):
                chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
