"""Permanent backend names and how to re-create a backend from its stored settings.

A name is a promise: once blobs have been written by ``datakeep.local@v1``, that name must
keep reading them forever. A new on-disk format gets a new name, registered beside the old.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput, UnknownBackend
from ._local import LocalBackend
from ._location import S3_NAME
from ._memory import MemoryBackend
from ._protocol import Backend

__all__ = ["open_backend", "register_backend", "registered_backends"]


def _s3(**config: Any) -> Backend:
    # imported on use: obstore is not needed to open a local keep
    from ._s3 import S3Backend

    return S3Backend(**config)


_FACTORIES: dict[str, Callable[..., Backend]] = {
    LocalBackend.name: LocalBackend,
    MemoryBackend.name: MemoryBackend,
    S3_NAME: _s3,
}


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    """Make ``name`` resolvable; a name can be registered once, it never changes meaning."""
    existing = _FACTORIES.get(name)
    if existing is not None and existing is not factory:
        raise InvalidInput(f"backend name {name!r} is already registered")
    _FACTORIES[name] = factory


def registered_backends() -> list[str]:
    return sorted(_FACTORIES)


def open_backend(name: str, config: dict[str, Any]) -> Backend:
    """The backend registered as ``name``, constructed from its :meth:`Backend.config`."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownBackend(
            f"unknown backend {name!r}; known: {', '.join(registered_backends())}"
        ) from None
    return factory(**config)
