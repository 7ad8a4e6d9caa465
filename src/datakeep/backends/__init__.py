"""Blob backends: one small protocol, a few implementations, a registry of permanent names."""

from typing import TYPE_CHECKING, Any

from ._local import LocalBackend
from ._location import S3_NAME, Remote, backend_for_location
from ._memory import MemoryBackend
from ._protocol import Backend, BlobInfo, FileBackend, IngestLink, StagedBlob, check_key
from ._registry import open_backend, register_backend, registered_backends

if TYPE_CHECKING:
    from ._s3 import open_s3_store, translated_errors

__all__ = [
    "S3_NAME",
    "Backend",
    "BlobInfo",
    "FileBackend",
    "IngestLink",
    "LocalBackend",
    "MemoryBackend",
    "Remote",
    "StagedBlob",
    "backend_for_location",
    "check_key",
    "open_backend",
    "open_s3_store",
    "register_backend",
    "registered_backends",
    "translated_errors",
]


def __getattr__(name: str) -> Any:
    # obstore is loaded only where S3 is used
    if name in ("open_s3_store", "translated_errors"):
        from . import _s3

        return getattr(_s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
