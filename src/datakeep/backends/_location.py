"""Where blobs live, as a user names it: a directory or ``s3://bucket/prefix``, turned into
a permanent backend name and the settings that open it, and back (a :class:`Remote`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ._local import LocalBackend

if TYPE_CHECKING:
    from ._protocol import Backend

__all__ = ["S3_NAME", "Remote", "backend_for_location"]

S3_NAME = "datakeep.s3@v1"


def backend_for_location(location: str, endpoint: str | None = None) -> tuple[str, dict[str, Any]]:
    """(permanent backend name, settings) for a directory or ``s3://bucket/prefix``."""
    if not location.strip():  # Path("") is the current directory: never meant
        raise InvalidInput("an empty location: give a directory or s3://bucket/prefix")
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidInput(f"no bucket in {location!r}; use s3://bucket/prefix")
        return S3_NAME, {
            "bucket": bucket,
            "prefix": prefix.strip("/"),
            "endpoint": endpoint,
            "region": None,
        }
    if "://" in location:
        raise InvalidInput(f"expected a directory or s3://bucket/prefix, not {location!r}")
    if endpoint is not None:
        raise InvalidInput("an endpoint goes with s3:// locations only")
    return LocalBackend.name, {"root": str(Path(location).resolve())}


@dataclass(frozen=True, slots=True)
class Remote:
    """A named place that holds copies."""

    name: str
    backend: str
    """Its permanent backend name, e.g. ``datakeep.s3@v1``."""
    config: dict[str, Any]
    """Settings that re-create the backend (never credentials)."""

    @property
    def location(self) -> str:
        if self.backend == LocalBackend.name:
            return str(self.config["root"])
        return f"s3://{self.config['bucket']}/{self.config.get('prefix', '')}".rstrip("/")

    def open(self) -> Backend:
        from ._registry import open_backend  # which imports this module

        return open_backend(self.backend, dict(self.config))
