"""Blob backends: one small protocol, a few implementations, a registry of permanent names."""

from ._local import LocalBackend
from ._location import S3_NAME, backend_for_location
from ._memory import MemoryBackend
from ._protocol import Backend, BlobInfo, FileBackend, IngestLink, StagedBlob, check_key
from ._registry import open_backend, register_backend, registered_backends

__all__ = [
    "S3_NAME",
    "Backend",
    "BlobInfo",
    "FileBackend",
    "IngestLink",
    "LocalBackend",
    "MemoryBackend",
    "StagedBlob",
    "backend_for_location",
    "check_key",
    "open_backend",
    "register_backend",
    "registered_backends",
]
