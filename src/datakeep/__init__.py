"""datakeep: a verified, content-addressed storage layer for data pipelines.

    import datakeep
    keep = datakeep.open(".")            # finds .datakeep upward, like git
    keep = datakeep.open_or_init("data") # exactly data/.datakeep, created if absent
    c = keep.put(b"...", tags={"kind": "raw"})
    keep.get(c.digest)

Submodules are imported on first use so that ``datakeep --version`` starts fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AlreadyExists,
    Busy,
    DatakeepError,
    IndexFailure,
    IntegrityError,
    InvalidDigest,
    InvalidInput,
    InvalidPath,
    LinkUnsupported,
    NotFound,
    SchemaTooNew,
    StorageError,
    UnknownAlgorithm,
    UnknownBackend,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .aio import AsyncKeep
    from .content import Content, Page, Router
    from .keep import Keep
    from .maintenance.verify import VerifyReport

__all__ = [
    "AlreadyExists",
    "AsyncKeep",
    "Busy",
    "Content",
    "DatakeepError",
    "IndexFailure",
    "IntegrityError",
    "InvalidDigest",
    "InvalidInput",
    "InvalidPath",
    "Keep",
    "LinkUnsupported",
    "NotFound",
    "Page",
    "SchemaTooNew",
    "StorageError",
    "UnknownAlgorithm",
    "UnknownBackend",
    "VerifyReport",
    "__version__",
    "init",
    "open",
    "open_async",
    "open_or_init",
    "open_or_init_async",
]

_LAZY = {
    "AsyncKeep": "aio",
    "Content": "content",
    "Page": "content",
    "Keep": "keep",
    "VerifyReport": "maintenance.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'datakeep' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def open(path: str | os.PathLike[str] = ".", router: Router | None = None) -> Keep:
    """Open the keep that holds ``path`` (searched upward; ``$DATAKEEP_DIR`` overrides).

    ``router(digest, tags) -> key`` chooses where new content goes (see
    :data:`datakeep.content.Router`); by default the keep's own layout."""
    from .keep import Keep, find_keep_dir

    return Keep(find_keep_dir(path), router)


def init(
    path: str | os.PathLike[str] = ".",
    algorithm: str = "blake3",
    index: str | None = None,
    blobs: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    routes: Mapping[str, str] | None = None,
    route_by: str | None = None,
) -> Keep:
    """Create a keep in ``path/.datakeep`` and open it.

    ``index`` is a ``postgresql://`` URL for a shared index (default: SQLite inside the
    keep); ``blobs`` a directory for the bytes, such as a shared mount, or
    ``s3://bucket/prefix`` (with ``endpoint`` for an S3-compatible server); default:
    inside the keep. ``routes`` and ``route_by`` send content to other buckets by a tag
    (see :func:`datakeep.keep.init_keep`).
    """
    from .keep import init_keep

    return init_keep(path, algorithm, index, blobs, endpoint, routes, route_by)


def open_or_init(
    path: str | os.PathLike[str],
    algorithm: str | None = None,
    index: str | None = None,
    blobs: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    routes: Mapping[str, str] | None = None,
    route_by: str | None = None,
    router: Router | None = None,
) -> Keep:
    """The keep in exactly ``path/.datakeep``, created with these settings if there is
    none (``algorithm`` default BLAKE3): no upward search, no ``$DATAKEEP_DIR``. Safe when
    many processes call it at once on a new directory (one creates, all open). A setting
    given that an existing keep's ``keep.json`` contradicts raises :class:`InvalidInput`;
    one not given takes the keep's own. Arguments as for :func:`init` and :func:`open`."""
    from .keep import init_keep

    return init_keep(
        path, algorithm, index, blobs, endpoint, routes, route_by, router, exist_ok=True
    )


def open_async(path: str | os.PathLike[str] = ".") -> AsyncKeep:
    """An async keep: ``async with datakeep.open_async(".") as keep: await keep.put(...)``."""
    from .aio import AsyncKeep

    return AsyncKeep(path)


def open_or_init_async(
    path: str | os.PathLike[str],
    algorithm: str | None = None,
    index: str | None = None,
    blobs: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    routes: Mapping[str, str] | None = None,
    route_by: str | None = None,
    router: Router | None = None,
) -> AsyncKeep:
    """:func:`open_or_init`, opened (in a worker thread) by ``async with`` or ``await
    keep.open()``: ``async with datakeep.open_or_init_async("data") as keep: ...``."""
    from .aio import AsyncKeep

    return AsyncKeep.opened_by(
        lambda: open_or_init(path, algorithm, index, blobs, endpoint, routes, route_by, router)
    )
