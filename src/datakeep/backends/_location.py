"""Where blobs live, as a user names it: a directory or ``s3://bucket/prefix``, turned into
a permanent backend name and the settings that open it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ._local import LocalBackend

__all__ = ["S3_NAME", "backend_for_location"]

S3_NAME = "datakeep.s3@v1"


def backend_for_location(location: str, endpoint: str | None = None) -> tuple[str, dict[str, Any]]:
    """(permanent backend name, settings) for a directory or ``s3://bucket/prefix``."""
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
