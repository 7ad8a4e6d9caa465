"""``datakeep.s3@v1``: blobs as objects in an S3-compatible bucket, through obstore.

* Create-only: blobs are one ``PUT`` with ``If-None-Match: *``; a blob staged past
  :data:`STAGE_IN_MEMORY` streams as a multipart upload to a staging object, then is
  copied into place with a conditional multipart copy (no 5 GB copy limit) and the staging
  object removed. Either way an existing key is never overwritten.
* Keys live under ``prefix`` in ``bucket``; the stored config holds no credentials. They
  come from the standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``,
  ``AWS_ENDPOINT_URL``...), as obstore reads them, else from the AWS config files and
  ``AWS_PROFILE`` (:mod:`._aws_profile`); ``endpoint`` selects an S3-compatible server
  (MinIO, Ceph, R2...).
* ``routes`` send keys whose first segment names a route to another bucket/prefix, so a
  router can choose the bucket from digest and tags (see :class:`S3Backend`).
* Transient errors are retried with exponential backoff by obstore's client.
* obstore's errors become datakeep's in :func:`_translated`, the one place that does.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from collections.abc import Iterator, Mapping
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

from ..errors import InvalidInput, NotFound, StorageError
from ._aws_profile import profile_settings
from ._location import backend_for_location
from ._protocol import BlobInfo, check_key

if TYPE_CHECKING:
    from obstore.store import RetryConfig

__all__ = ["S3Backend", "open_s3_store", "translated_errors"]

STAGE_IN_MEMORY = 16 << 20
"""Staged bytes are buffered up to here and sent as one create-only PUT (which obstore
can only send whole); a larger blob streams as a multipart upload to a staging object,
then is copied into place (the copy is server-side on S3, but twice the work for an
emulator). Bounded so that a few blobs sent at once stay well within the memory budget
(issue 25: 256 MB whatever the file sizes)."""
CHUNK = 8 << 20
"""A part of a multipart upload."""
_READ_CHUNK = 1 << 20
UPLOAD_CONCURRENCY = 2
"""Parts of one upload in flight at once: with :data:`CHUNK`, what one upload holds."""
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
        if _METADATA_SERVICE in str(exc):
            # no credentials anywhere, so the client asked the EC2 instance metadata service
            raise StorageError(NO_CREDENTIALS) from exc
        why = "the bucket does not exist" if "NoSuchBucket" in str(exc) else _first_line(exc)
        raise StorageError(f"S3 could not {action} {key!r}: {why}") from exc


_METADATA_SERVICE = "169.254.169.254"
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _store_for(
    bucket: str, prefix: str, endpoint: str | None, region: str | None, profile: Any
) -> S3Store:
    options: dict[str, Any] = {}
    if endpoint is not None:
        options["endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["client_options"] = {"allow_http": True}
    if profile.credential_provider is not None:
        options["credential_provider"] = profile.credential_provider
    if (region or profile.region) is not None:
        options["region"] = region or profile.region
    return S3Store(
        bucket,
        prefix=prefix or None,
        copy_if_not_exists="multipart",
        retry_config=_RETRY,
        **options,
    )


def _split_location(location: str) -> tuple[str, str]:
    """(bucket, prefix) of a route's ``s3://bucket/prefix``, by the one location parser."""
    name, settings = backend_for_location(location)
    if name != S3Backend.name:
        raise InvalidInput(f"a route goes to s3://bucket/prefix, not {location!r}")
    return settings["bucket"], settings["prefix"]


def open_s3_store(location: str, endpoint: str | None = None) -> S3Store:
    """An obstore store over ``s3://bucket/prefix`` with the credentials and retries of
    the backend, for objects that are not blobs (a workspace's S3 resource); wrap its
    calls in :func:`translated_errors`."""
    _name, settings = backend_for_location(location, endpoint)
    return _store_for(settings["bucket"], settings["prefix"], endpoint, None, profile_settings())


translated_errors = _translated


class S3Backend:
    """Blobs in ``s3://bucket/prefix``, and optionally in other buckets by route.

    ``routes`` maps a route name to another ``s3://bucket/prefix`` on the same endpoint:
    a key whose first segment is a route name (``models/blake3/ab/...``) is stored there,
    under the rest of the key. A router (:data:`datakeep.content.Router`) sends content to
    a bucket by choosing such a key from its digest and tags; the index keeps the key, so
    every blob is found again wherever it went.
    """

    name: ClassVar[str] = "datakeep.s3@v1"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        routes: Mapping[str, str] | None = None,
        stage_in_memory: int = STAGE_IN_MEMORY,
    ) -> None:
        self.bucket = bucket
        self.stage_in_memory = stage_in_memory
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.region = region
        self.routes = dict(routes or {})
        profile = profile_settings()
        self._store = _store_for(bucket, self.prefix, endpoint, region, profile)
        self._routed: dict[str, S3Store] = {}
        for route, location in self.routes.items():
            if not route or "/" in route or route.startswith(("@", ".")):
                raise InvalidInput(f"a route name is one plain path segment, not {route!r}")
            self._routed[route] = _store_for(*_split_location(location), endpoint, region, profile)

    def __repr__(self) -> str:
        return f"S3Backend(s3://{self.bucket}/{self.prefix})"

    def _where(self, key: str) -> tuple[S3Store, str]:
        """The store and path that hold ``key``."""
        check_key(key)
        route, _, rest = key.partition("/")
        store = self._routed.get(route)
        return (store, rest) if store is not None and rest else (self._store, key)

    # -- the protocol ----------------------------------------------------------------------
    def create(self, key: str, data: bytes | bytearray) -> bool:
        store, path = self._where(key)
        try:
            with _translated("write", key):
                obstore.put(store, path, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def stage(self) -> _StagedObject:
        return _StagedObject(self)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        store, path = self._where(key)
        with _translated("read", key):
            result = obstore.get(
                store, path, options={"range": {"offset": offset}} if offset else None
            )
        # chunks of 1 MiB, not obstore's 10 MB: a reader per worker, many workers
        return io.BufferedReader(_ChunkReader(result.stream(_READ_CHUNK), key), _READ_CHUNK)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        store, path = self._where(key)
        if end is None:
            end = self.head(key).size
        if end <= start:
            self.head(key)  # still NotFound for a missing key
            return b""
        try:
            with _translated("read", key):
                return bytes(obstore.get_range(store, path, start=start, end=end))
        except StorageError as exc:
            # a range past the end is empty, as a slice is (S3 answers 416)
            if "InvalidRange" in str(exc.__cause__):
                return b""
            raise

    def head(self, key: str) -> BlobInfo:
        store, path = self._where(key)
        with _translated("stat", key):
            meta = obstore.head(store, path)
        return BlobInfo(key, meta["size"], meta["last_modified"].timestamp())

    def delete(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        store, path = self._where(key)
        with _translated("delete", key):
            obstore.delete(store, path)
        return True

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        route, _, rest = prefix.partition("/")
        if route in self._routed and "/" in prefix:
            yield from self._list(self._routed[route], rest, f"{route}/")
            return
        yield from self._list(self._store, prefix, "")
        for route, store in sorted(self._routed.items()):
            if route.startswith(prefix):
                yield from self._list(store, "", f"{route}/")

    def _list(self, store: S3Store, prefix: str, route: str) -> Iterator[BlobInfo]:
        # obstore lists whole path segments; the contract is a plain string prefix
        base = prefix.rpartition("/")[0]
        if base:
            check_key(base)
        with _translated("list", route + prefix):
            for batch in obstore.list(store, base or None, chunk_size=1000):
                for meta in batch:
                    key = meta["path"]
                    if key.startswith(prefix) and not key.startswith(_STAGING):
                        yield BlobInfo(route + key, meta["size"], meta["last_modified"].timestamp())

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "endpoint": self.endpoint,
            "region": self.region,
        }
        if self.routes:
            config["routes"] = dict(self.routes)
        return config


class _StagingUpload:
    """A multipart upload to a fresh staging object of one store, published under a real
    path only by a conditional copy (no 5 GB limit), so nothing is ever overwritten."""

    def __init__(self, store: S3Store) -> None:
        self._store = store
        self._staging = f"{_STAGING}{secrets.token_hex(16)}"
        with _translated("write", self._staging):
            self._writer = obstore.open_writer(
                store, self._staging, buffer_size=CHUNK, max_concurrency=UPLOAD_CONCURRENCY
            )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with _translated("write", self._staging):
            self._writer.write(data)

    def publish(self, path: str, key: str) -> bool:
        """Put the staged bytes at ``path`` unless it exists; True if they were put."""
        with _translated("write", key):
            self._writer.close()
        try:
            with _translated("write", key):
                obstore.copy(self._store, self._staging, path, overwrite=False)
        except (AlreadyExistsError, PreconditionError):
            return False
        finally:
            with _translated("delete", self._staging):
                obstore.delete(self._store, self._staging)
        return True

    def abort(self) -> None:
        # obstore's writer cannot abort: finish the staging object, then remove it.
        # Nothing was ever published under a real key.
        try:
            self._writer.close()
            obstore.delete(self._store, self._staging)
        except Exception:
            # best effort: raising here would hide the error that made the put abort; a
            # staging object left behind is never published and expires by lifecycle policy
            pass


class _StagedObject:
    """Buffers a blob in memory up to :data:`STAGE_IN_MEMORY` (then it is one create-only
    PUT). Past that it streams as a multipart upload to the bucket, or, when routes make
    the bucket depend on the key that commit will name, to a temporary file first, so the
    blob is still sent once, straight to its bucket."""

    def __init__(self, backend: S3Backend) -> None:
        self._backend = backend
        self._buffer: bytearray | None = bytearray()
        self._upload: _StagingUpload | None = None
        self._spool: BinaryIO | None = None

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self._buffer is not None, "write after commit or abort"
        # past the in-memory limit, bytes go straight on: what is held stays bounded
        if self._upload is not None:
            self._upload.write(data)
            return
        if self._spool is not None:
            self._spool.write(data)
            return
        self._buffer += data
        if len(self._buffer) < self._backend.stage_in_memory:
            return
        if self._backend.routes:
            # closed by commit or abort, which the content store always calls
            self._spool = tempfile.TemporaryFile(prefix="datakeep-s3-")  # noqa: SIM115
            self._spool.write(self._buffer)
        else:
            self._upload = _StagingUpload(self._backend._store)
            self._upload.write(self._buffer)
        # a new buffer, not cleared: the upload may still hold the old one
        self._buffer = bytearray()

    def commit(self, key: str) -> bool:
        store, path = self._backend._where(key)
        assert self._buffer is not None, "commit after commit or abort"
        buffer, self._buffer = self._buffer, None
        upload, self._upload = self._upload, None
        spool, self._spool = self._spool, None
        if spool is not None:
            with spool:
                upload = _StagingUpload(store)
                spool.seek(0)
                while chunk := spool.read(CHUNK):
                    upload.write(chunk)
        if upload is None:
            return self._backend.create(key, buffer)  # obstore sends it without a copy
        if buffer:
            upload.write(buffer)
        return upload.publish(path, key)

    def abort(self) -> None:
        self._buffer = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._upload is not None:
            upload, self._upload = self._upload, None
            upload.abort()

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
