"""Roots: what keeps content alive through gc.

Content is live when it is pinned, tagged, named by a feature that registered a root
provider, or named by a live tree. A feature (run records, stores...) owns tables that
name contents; it tells gc about them through one small interface, :class:`RootProvider`,
registered under the entry point group ``datakeep.roots`` so that gc finds it even in a
process that never imported the feature. :func:`register_roots` adds one at run time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from sqlalchemy import Connection, delete, select

from ..errors import InvalidInput
from ..index import IndexDatabase, pins, tags
from ..index.upsert import insert_or_update

__all__ = [
    "ENTRY_POINT_GROUP",
    "RootProvider",
    "pin",
    "pinned",
    "register_roots",
    "root_providers",
    "unpin",
]

ENTRY_POINT_GROUP = "datakeep.roots"


@runtime_checkable
class RootProvider(Protocol):
    """Gives gc the digests a feature still needs."""

    name: str
    """Shown in gc's report, e.g. ``pins`` or ``runs``."""

    def live_digests(self, conn: Connection) -> Iterable[str]:
        """Every digest this feature refers to, read through ``conn`` (the index)."""


class _Pins:
    name = "pins"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        return conn.execute(select(pins.c.digest)).scalars()


class _Tags:
    name = "tags"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        return conn.execute(select(tags.c.digest).distinct()).scalars()


_registered: dict[str, RootProvider] = {}


def register_roots(provider: RootProvider) -> None:
    """Make gc keep ``provider``'s digests alive (in this process)."""
    if not isinstance(provider, RootProvider):
        raise InvalidInput(f"{provider!r} is not a root provider")
    _registered[provider.name] = provider


def root_providers() -> list[RootProvider]:
    """Pins, tags, every provider installed as an entry point and every registered one."""
    found: dict[str, RootProvider] = {"pins": _Pins(), "tags": _Tags()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        provider = entry.load()()
        found[provider.name] = provider
    found.update(_registered)
    return list(found.values())


# -- pins ------------------------------------------------------------------------------
def pin(db: IndexDatabase, digest: str, note: str = "") -> None:
    """Keep ``digest`` (and, for a tree, its files) through every gc until unpinned."""
    row = {"digest": digest, "note": note, "created_at": time.time()}
    db.transact(
        "pinning",
        lambda c: c.execute(insert_or_update(c, pins, ["digest"], ["note"]), [row]),
    )


def unpin(db: IndexDatabase, digest: str) -> bool:
    """Remove a pin; True if there was one."""
    return db.transact(
        "unpinning", lambda c: c.execute(delete(pins).where(pins.c.digest == digest)).rowcount > 0
    )


def pinned(db: IndexDatabase) -> list[str]:
    with db.read("listing pins") as conn:
        return list(conn.execute(select(pins.c.digest).order_by(pins.c.digest)).scalars())
