"""The remotes a keep knows: named directories or buckets that hold copies, registered
in the index with the settings that re-create their backend (never credentials)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select

from ..backends import Remote, backend_for_location
from ..content import PRIMARY, ContentStore
from ..errors import AlreadyExists, InvalidInput, NotFound
from ..index import placements, remotes
from ..index.upsert import insert_ignore
from ..progress import TransferReport

__all__ = [
    "BATCH",
    "WORKERS",
    "Remote",
    "TransferReport",
    "add_remote",
    "forget_held",
    "get_remote",
    "list_remotes",
    "remove_remote",
]


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# rows per inventory transaction, and transfers in flight at once
BATCH = 500
WORKERS = 8


def add_remote(
    store: ContentStore, name: str, location: str, endpoint: str | None = None
) -> Remote:
    """Register a remote; the directory or bucket must be reachable."""
    if not _NAME.match(name) or name == PRIMARY:
        raise InvalidInput(f"invalid remote name {name!r}: letters, digits, '_', '.', '-'")
    backend_name, config = backend_for_location(location, endpoint)
    remote = Remote(name, backend_name, config)
    list(remote.open().list("never/"))  # reachable? (a clear StorageError if not)
    row = {
        "name": name,
        "backend": backend_name,
        "config": json.dumps(config),
        "created_at": time.time(),
    }

    def run(conn: Any) -> list[str]:
        added = insert_ignore(conn, remotes, ["name"], returning=["name"])
        return list(conn.execute(added, [row]).scalars())

    if not store.db.transact("adding a remote", run):
        raise AlreadyExists(f"a remote named {name!r} exists already")
    return remote


def list_remotes(store: ContentStore) -> list[Remote]:
    with store.db.read("listing remotes") as conn:
        rows = conn.execute(select(remotes).order_by(remotes.c.name)).all()
    return [Remote(r.name, r.backend, json.loads(r.config)) for r in rows]


def get_remote(store: ContentStore, name: str) -> Remote:
    for remote in list_remotes(store):
        if remote.name == name:
            return remote
    known = ", ".join(r.name for r in list_remotes(store)) or "none"
    raise NotFound(f"no remote named {name!r} (known: {known})")


def remove_remote(store: ContentStore, name: str) -> None:
    """Forget a remote and its inventory; the remote's bytes are left as they are."""
    get_remote(store, name)

    def run(conn: Any) -> None:
        conn.execute(delete(placements).where(placements.c.location == name))
        conn.execute(delete(remotes).where(remotes.c.name == name))

    store.db.transact("removing a remote", run)


def forget_held(store: ContentStore, name: str, digests: Iterable[str]) -> int:
    """Drop the inventory rows saying remote ``name`` holds ``digests`` (found missing or
    bad there), so the next push sends them again; how many were dropped."""
    wanted = sorted(set(digests))

    def run(conn: Any) -> int:
        dropped = 0
        for i in range(0, len(wanted), BATCH):
            dropped += conn.execute(
                delete(placements).where(
                    placements.c.location == name, placements.c.digest.in_(wanted[i : i + BATCH])
                )
            ).rowcount
        return dropped

    return store.db.transact("correcting the remote inventory", run) if wanted else 0
