"""Verify a remote against its inventory: each blob present with its size, or re-hashed."""

from __future__ import annotations

import json

from sqlalchemy import select

from ..content import ContentStore, Problem, drain_verified
from ..errors import IntegrityError, NotFound, StorageError
from ..index import contents, placements
from ..progress import Progress, ProgressCallback
from .mirrors import open_at
from .registry import forget_held, get_remote

__all__ = ["verify_remote"]

_RESEND = "dropped from the inventory: the next push sends it again"


def verify_remote(
    store: ContentStore,
    name: str,
    rehash: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[int, int, list[Problem]]:
    """Check that remote ``name`` holds what the inventory says: each blob present with
    its size, and with ``rehash`` its bytes too. Returns (blobs, bytes, problems).

    What is missing or wrong there is dropped from the inventory, so the next push sends
    it again; a remote that cannot be reached (:class:`StorageError`) changes nothing."""
    remote = get_remote(store, name)
    backend = remote.open()
    query = (
        select(placements.c.digest, contents.c.size, placements.c.pointer)
        .join(contents, contents.c.digest == placements.c.digest)
        .where(placements.c.location == name)
        .order_by(placements.c.digest)
    )
    with store.db.read("reading the remote inventory") as conn:
        rows = conn.execute(query).all()
    problems: list[Problem] = []
    lost: list[str] = []
    for done, (digest, size, text) in enumerate(rows, start=1):
        pointer = json.loads(text)
        key = pointer.get("pack") or pointer["key"]
        try:
            if rehash:
                with open_at(backend, pointer) as raw:
                    drain_verified(raw, digest, size)
            elif "pack" in pointer:
                if backend.head(key).size < pointer["offset"] + pointer["length"]:
                    raise IntegrityError(f"pack {key} on {name} is too short for {digest}")
            elif (found := backend.head(key).size) != size:
                raise IntegrityError(f"{digest} has {found} bytes on {name}, not {size}")
        except NotFound:
            problems.append(Problem(digest, f"missing from remote {name} ({key}); {_RESEND}"))
            lost.append(digest)
        except IntegrityError as exc:
            problems.append(Problem(digest, f"on remote {name}: {exc}; {_RESEND}"))
            lost.append(digest)
        except StorageError as exc:
            problems.append(Problem(digest, f"on remote {name}: {exc}"))
        if progress is not None:
            progress(Progress("verify", done, len(rows), size))
    forget_held(store, name, lost)
    return len(rows), sum(size for _, size, _ in rows), problems
