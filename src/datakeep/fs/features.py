"""The features seen as directories: ``ws/<workspace>@<snapshot>/<resource>/...`` (a
snapshot's resources are trees of the keep) and ``files/<namespace>.../<name>`` (the files
of the keep's file store). Both read the feature's own index rows, always current."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from urllib.parse import unquote

from sqlalchemy import select

from ..errors import InvalidPath, NotFound
from ..files import FileStore, NotAStoreError
from ..keep import Keep
from ..workspaces import Manifest, Snapshot
from ..workspaces.history import history, resolve
from ..workspaces.schema import snapshots
from .nodes import DirNode, FileNode, Node

__all__ = ["FileStores", "Workspaces"]

TreeNode = Callable[[str, tuple[str, ...], float | None], Node]
LazyDir = Callable[[tuple[str, ...], float | None], DirNode]


class Workspaces:
    """``ws/``: every snapshot of every workspace whose history this keep's index holds."""

    def __init__(self, keep: Keep, tree_node: TreeNode, lazy_dir: LazyDir) -> None:
        self.keep = keep
        self.tree_node = tree_node
        self.lazy_dir = lazy_dir

    def node(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return DirNode(self._snapshots)
        workspace, at, name = rest[0].partition("@")
        if not at or not workspace or not name:
            raise InvalidPath(f"a workspace path is ws/<workspace>@<snapshot>, not ws/{rest[0]}")
        snapshot = resolve(self.keep.db, workspace, unquote(name))
        trees = self._trees(snapshot)
        if len(rest) == 1:
            return DirNode(
                lambda: [(r, self.tree_node(t, (), snapshot.created_at)) for r, t in trees.items()],
                created=snapshot.created_at,
            )
        if rest[1] not in trees:
            listed = ", ".join(trees) or "none"
            raise NotFound(f"snapshot {snapshot.hash} has no resource {rest[1]!r} ({listed})")
        return self.tree_node(trees[rest[1]], rest[2:], snapshot.created_at)

    def _trees(self, snapshot: Snapshot) -> dict[str, str]:
        """Resource name to tree, from the snapshot's manifest (verified content)."""
        manifest = Manifest.decode(self.keep.get(snapshot.hash), f"snapshot {snapshot.hash}")
        return dict(sorted(manifest.trees().items()))

    def _snapshots(self) -> list[tuple[str, Node]]:
        query = select(snapshots.c.workspace).distinct().order_by(snapshots.c.workspace)
        with self.keep.db.read("listing workspaces") as conn:
            names = list(conn.execute(query).scalars())
        found: list[tuple[str, Node]] = []
        for workspace in names:
            for snapshot in history(self.keep.db, workspace, newest_first=False):
                name = f"{workspace}@{snapshot.hash}"
                found.append((name, self.lazy_dir(("ws", name), snapshot.created_at)))
        return found


class FileStores:
    """``files/``: the keep's file store (the one named, or the only one), its namespace
    parts as directories."""

    def __init__(self, keep: Keep, name: str | None) -> None:
        self.keep = keep
        self.name = name

    def node(self, rest: tuple[str, ...]) -> Node:
        try:
            store = FileStore.open(self.keep, self.name)
        except NotAStoreError:
            if rest or self.name is not None:
                raise
            return DirNode(list)  # a keep without a file store: an empty directory
        if len(rest) >= 2:
            try:
                entry = store.manifest.entry(*rest)
            except NotFound:
                pass
            else:
                return FileNode(entry.digest, entry.size, created=entry.created_at)
        if rest and not store.manifest.list_resources(*rest):
            raise NotFound(f"no {'/'.join(rest)!r} in file store {store.name!r}")
        return DirNode(lambda: self._children(store, rest))

    def _children(self, store: FileStore, parts: tuple[str, ...]) -> list[tuple[str, Node]]:
        found: dict[str, Node] = {}
        for entry in store.manifest.list_resources(*parts):
            below = (*entry.namespace[len(parts) :], entry.name)
            if len(below) == 1:
                found[below[0]] = FileNode(entry.digest, entry.size, created=entry.created_at)
            elif below[0] not in found:
                deeper = (*parts, below[0])
                found[below[0]] = DirNode(partial(self._children, store, deeper))
        return sorted(found.items())
