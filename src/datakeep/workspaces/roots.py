"""gc roots of workspaces: every snapshot's manifest and the trees it names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, select

from .schema import snapshot_trees, snapshots

__all__ = ["WorkspaceRoots"]


class WorkspaceRoots:
    """Registered under the ``datakeep.roots`` entry point group (see pyproject)."""

    name = "workspaces"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        def both() -> Iterator[str]:
            yield from conn.execute(select(snapshots.c.hash)).scalars()
            yield from conn.execute(select(snapshot_trees.c.tree)).scalars()

        return both()
