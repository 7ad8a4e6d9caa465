"""Mirrors: reads that fall back to a remote's copy, verified, when the primary copy is
missing or bad."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any, BinaryIO

from sqlalchemy import select

from ..backends import Backend
from ..content import CHUNK, PRIMARY, ContentStore, VerifiedReader, drain_verified
from ..errors import IntegrityError, NotFound, StorageError
from ..index import placements
from .registry import Remote, list_remotes

__all__ = ["mirrors_of", "open_at", "open_from_mirror", "read_from_mirror"]


def mirrors_of(store: ContentStore, digest: str) -> list[tuple[Remote, dict[str, Any]]]:
    """(remote, pointer) of every remote the inventory says holds ``digest``."""
    query = select(placements.c.location, placements.c.pointer).where(
        placements.c.digest == digest, placements.c.location != PRIMARY
    )
    with store.db.read("finding mirrors") as conn:
        held = {location: pointer for location, pointer in conn.execute(query)}
    return [(r, json.loads(held[r.name])) for r in list_remotes(store) if r.name in held]


def open_at(backend: Backend, pointer: Mapping[str, Any]) -> BinaryIO:
    """The raw bytes a remote pointer names: an object, or a range of a pack."""
    if "pack" in pointer:
        start = int(pointer["offset"])
        return io.BytesIO(backend.read(pointer["pack"], start, start + int(pointer["length"])))
    return backend.open(pointer["key"])


def open_from_mirror(store: ContentStore, digest: str) -> tuple[str, io.BufferedReader]:
    """A verified reader of ``digest`` from the first mirror that has it: (its name, reader)."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, pointer in mirrors_of(store, digest):
        try:
            raw = open_at(remote.open(), pointer)
        except (NotFound, StorageError) as exc:
            failures.append(f"{remote.name}: {exc}")
            continue
        return remote.name, io.BufferedReader(VerifiedReader(raw, digest, size), CHUNK)
    raise NotFound(_none_good(digest, failures))


def read_from_mirror(store: ContentStore, digest: str) -> tuple[str, bytes]:
    """The verified bytes of ``digest`` from the first mirror whose copy is good."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, pointer in mirrors_of(store, digest):
        data = bytearray()
        try:
            with open_at(remote.open(), pointer) as raw:
                drain_verified(raw, digest, size, data.extend)
        except (NotFound, StorageError, IntegrityError) as exc:
            failures.append(f"{remote.name}: {exc}")
            continue
        return remote.name, bytes(data)
    raise NotFound(_none_good(digest, failures))


def _none_good(digest: str, failures: list[str]) -> str:
    return f"no mirror holds a good copy of {digest}" + (
        f" ({'; '.join(failures)})" if failures else ""
    )


def _recorded_size(store: ContentStore, digest: str) -> int:
    return store.info(digest).size
