"""The small contract every blob backend fulfils.

A backend deals only in keys and bytes. It knows nothing of hashing or the index: the
content store above it computes digests, chooses keys and verifies what comes back.
Writes are create-only: a key, once written, is never overwritten, so a blob is immutable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal, Protocol, runtime_checkable

from ..errors import InvalidPath

if TYPE_CHECKING:
    from ..digest import Hasher

__all__ = ["Backend", "BlobInfo", "FileBackend", "IngestLink", "StagedBlob", "check_key"]

IngestLink = Literal["hardlink", "reflink", "copy"]

# Keys are relative slash-separated names. A component may not start with a dot, which
# rules out "..", "." and reserves dot-names (".tmp") for the backend's own use.
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=-]*(/[A-Za-z0-9_][A-Za-z0-9._=-]*)*\Z")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidPath`."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidPath(f"invalid blob key {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a backend knows about one stored blob."""

    key: str
    """The key the blob is stored under, relative to the backend root."""
    size: int
    """Length in bytes."""
    modified: float = field(default=0.0, compare=False)
    """When the blob was stored, in seconds since the epoch (gc spares recent orphans)."""


class StagedBlob(Protocol):
    """A blob being written whose key is not known yet (it is the digest of the bytes).

    Use as a context manager: leaving the block without :meth:`commit` discards it.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        """Append bytes."""

    def commit(self, key: str) -> bool:
        """Store the staged bytes under ``key``, create-only.

        Returns True if written, False if ``key`` already existed (the existing blob is
        kept and the staged bytes are discarded).
        """

    def abort(self) -> None:
        """Discard the staged bytes; harmless after commit."""

    def __enter__(self) -> StagedBlob: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """A store of immutable blobs addressed by key."""

    name: ClassVar[str]
    """Permanent versioned name, e.g. ``datakeep.local@v1``; a new on-disk format gets a new
    name and old names stay readable."""

    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` under ``key`` unless it exists; True if written."""

    def stage(self) -> StagedBlob:
        """Start a blob whose key is chosen after its bytes are seen."""

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        """A binary reader positioned at ``offset``; :class:`NotFound` if missing."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the blob; :class:`NotFound` if missing."""

    def head(self, key: str) -> BlobInfo:
        """Size of the blob; :class:`NotFound` if missing."""

    def delete(self, key: str) -> bool:
        """Remove the blob; True if it existed."""

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every stored blob whose key starts with ``prefix``, in no particular order."""

    def config(self) -> dict[str, Any]:
        """JSON-able settings that re-create this backend with :func:`open_backend`."""


class StagedFile(StagedBlob, Protocol):
    """A blob being written to a file, which can also be filled by copying a file."""

    def copy_from(
        self,
        src: int,
        size: int,
        algorithm: str,
        also: Hasher | None = None,
        overlap: bool = True,
    ) -> tuple[str, int]:
        """Fill the (still empty) blob with ``size`` bytes of the open file ``src``,
        copied in the kernel and hashed as they land: (the digest of the copy, the bytes
        copied, fewer only if ``src`` ended first). ``also`` is fed the same bytes;
        ``overlap`` as :func:`~datakeep.copying.copy_hashed` takes it."""

    def __enter__(self) -> StagedFile: ...


@runtime_checkable
class FileBackend(Backend, Protocol):
    """A backend whose blobs are files on a local filesystem (links and syncs possible)."""

    def stage(self) -> StagedFile:
        """Start a new blob, as :meth:`Backend.stage`, written to a file."""

    def path_of(self, key: str) -> Path:
        """The file holding ``key`` (read-only; never write to it)."""

    def ingest(self, key: str, source: Path, link: IngestLink) -> bool:
        """Store the file ``source`` under ``key`` by hard link, reflink or a copy made in
        the kernel, create-only. The caller has verified ``source``.

        Raises :class:`LinkUnsupported` when the filesystem cannot link across.
        """

    def sync(self) -> None:
        """Make every blob written so far durable (one batched flush)."""

    def stale_temp_files(self, before: float) -> Sequence[tuple[str, int]]:
        """(name, size) of temporary files last written before ``before`` (seconds since
        the epoch): never published, left by writes that were killed."""

    def remove_temp_file(self, name: str) -> None:
        """Delete one of :meth:`stale_temp_files` (gone already is fine)."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of :meth:`list`, without the cost of a stat per blob."""
