"""Workspace: named resources with roles, snapshots that restore, results per snapshot,
lineage, and push / pull / clone through the keep's remotes.

A workspace is a directory with a ``.datakeep-workspace.json`` (:mod:`.local`) and a keep:
its own ``.datakeep`` or one elsewhere (shared). A snapshot stores each resource as a tree
of the keep and the whole as one manifest (:mod:`.manifest`); the index keeps the
history, tags and lineage (:mod:`.schema`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ..content import LinkMode
from ..errors import AlreadyExists, InvalidInput
from ..keep import KEEP_DIR, Keep, init_keep
from ..progress import ProgressCallback
from ..trees.scan import scan_directory
from . import history as snapshot_history
from .lineage import Lineage
from .local import STATE_FILE, LocalState, check_name, find_root, locked
from .manifest import Manifest
from .model import Changes, Resource, Snapshot
from .resources import add_resource, list_resources
from .s3prefix import S3Prefix
from .states import State, compare, directory_state, shared_modes, tree_state, version_in

__all__ = ["Workspace"]


class Workspace:
    """``Workspace.init(".")`` once, then ``Workspace.open(".")`` from anywhere inside."""

    def __init__(self, root: Path, keep: Keep, state: LocalState, owns_keep: bool = True) -> None:
        self.root = root
        self.keep = keep
        self.db = keep.db
        self.state = state
        self._owns_keep = owns_keep
        self.lineage = Lineage(self)

    @property
    def name(self) -> str:
        return self.state.name

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        name: str | None = None,
        keep: Keep | str | os.PathLike[str] | None = None,
        results_template: str | None = None,
    ) -> Workspace:
        """Make ``path`` a workspace. ``keep``: an open keep or the directory holding one
        (shared); default, ``path``'s own keep, created if there is none."""
        root = Path(path).resolve()
        root.mkdir(parents=True, exist_ok=True)
        if (root / STATE_FILE).exists():
            raise AlreadyExists(f"{root} is already a workspace")
        state = LocalState(check_name(name or root.name, "workspace"))
        if results_template is not None:
            state.results_template = results_template
        owns = True
        if isinstance(keep, Keep):
            opened, owns = keep, False
            state.keep = os.fspath(keep.path.parent)
        elif keep is not None:
            opened = Keep(Path(keep).resolve() / KEEP_DIR)
            state.keep = os.fspath(Path(keep).resolve())
        elif (root / KEEP_DIR).exists():
            opened = Keep(root / KEEP_DIR)
        else:
            opened = init_keep(root)
        state.write(root)
        return cls(root, opened, state, owns)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> Workspace:
        root = find_root(path)
        state = LocalState.read(root)
        keep_root = Path(state.keep) if state.keep is not None else root
        return cls(root, Keep(keep_root / KEEP_DIR), state)

    def close(self) -> None:
        if self._owns_keep:
            self._owns_keep = False
            self.keep.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Workspace {self.name} at {self.root}>"

    def _save_state(self) -> None:
        self.state.write(self.root)

    # -- resources -----------------------------------------------------------------------
    def add_resource(
        self,
        name: str,
        role: str,
        local_path: str | os.PathLike[str],
        allow_outside: bool = False,
        endpoint: str | None = None,
    ) -> Resource:
        """Add a directory (created if missing) or an ``s3://bucket/prefix`` (with the
        ``endpoint`` of an S3-compatible server) under ``name`` with ``role``: one of
        ``source-data``, ``intermediate-data``, ``results``, ``code``."""
        if role == "results" and str(local_path).startswith("s3://"):
            raise InvalidInput("a results resource is a local directory (results move into it)")
        return add_resource(
            self.db,
            self.root,
            self.keep.path,
            self.state,
            name,
            role,
            local_path,
            allow_outside,
            endpoint,
        )

    def current_state(self, resource: Resource, known_tree: str | None = None) -> State | str:
        """The files of ``resource`` now, or ``known_tree`` if they are known to be it."""
        if resource.on_s3:
            return S3Prefix(self.keep, resource.stored_path, resource.endpoint).state()
        return directory_state(self.keep, resource.path, known_tree)

    def store_resource(
        self, resource: Resource, head_tree: str | None, progress: ProgressCallback | None
    ) -> str:
        """Store the resource's files as a tree of the keep; its digest."""
        if resource.on_s3:
            return S3Prefix(self.keep, resource.stored_path, resource.endpoint).store_tree()
        scanned = scan_directory(resource.path, self.keep.algorithm)
        tree = self.keep.put_tree(resource.path, progress=progress, scanned=scanned).digest
        shared = any(s.kind == "f" and s.stat.st_nlink > 1 for s in scanned.entries)
        if shared and head_tree is not None and tree != head_tree:
            tree = shared_modes(self.keep, tree, head_tree)
        return tree

    def resources(self) -> list[Resource]:
        return list_resources(self.db, self.root, self.state)

    @property
    def results_template(self) -> str:
        return self.state.results_template

    @results_template.setter
    def results_template(self, template: str) -> None:
        from .results import subdir_for

        subdir_for(template, "tag", 1, 0.0)  # refused now rather than at the next snapshot
        self.state.results_template = template
        self._save_state()

    # -- status --------------------------------------------------------------------------
    def head(self) -> Snapshot | None:
        """The snapshot the resources were last snapshotted as or restored from."""
        return snapshot_history.snapshot_of(self.db, self.name, self.state.head)

    def status(self, only: Iterable[str] | None = None) -> Changes:
        """Files added, changed and removed in each resource since the last snapshot (for
        results, which restore leaves as they are: since the newest snapshot)."""
        head = self.head()
        trees = head.trees if head is not None else {}
        listed = self.resources()
        newest = None
        if any(r.role == "results" for r in listed):
            newest = snapshot_history.newest(self.db, self.name)
        wanted = None if only is None else set(only)
        changes: Changes = {}
        for resource in listed:
            if wanted is not None and resource.name not in wanted:
                continue
            tree = trees.get(resource.name)
            if resource.role == "results" and newest is not None:
                tree = newest.trees.get(resource.name)
            now = self.current_state(resource, tree)
            if isinstance(now, str):
                continue  # the stat cache vouches: exactly the snapshot's tree
            found = compare(tree_state(self.keep, tree), now)
            if found:
                changes[resource.name] = found
        return changes

    def diff(self, a: str, b: str) -> Changes:
        """Files added, changed and removed in each resource from snapshot ``a`` to ``b``."""
        old, new = self.find_snapshot(a).trees, self.find_snapshot(b).trees
        changes: Changes = {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) == new.get(name):
                continue
            found = compare(
                tree_state(self.keep, old.get(name)), tree_state(self.keep, new.get(name))
            )
            if found:
                changes[name] = found
        return changes

    def source_version(self, resource: str, subpath: str) -> str | None:
        """The version of ``resource/subpath`` in the last snapshot, if the resource is
        unchanged since; None if it has changed or was never snapshotted."""
        head = self.head()
        if head is None or resource not in head.trees or self.status([resource]):
            return None
        return version_in(self.keep, head.trees[resource], subpath)

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(
        self,
        tag: str | None = None,
        message: str = "",
        metrics: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Store every resource and return the snapshot's hash; all or nothing."""
        from .snapshot import take_snapshot

        with locked(self.root):
            self.state = LocalState.read(self.root)
            return take_snapshot(self, tag, message, dict(metrics or {}), progress)

    def history(self, newest_first: bool = True, max_count: int | None = None) -> list[Snapshot]:
        return snapshot_history.history(self.db, self.name, newest_first, max_count)

    def find_snapshot(self, name: str) -> Snapshot:
        """The snapshot named by a tag, a hash or a unique hash prefix."""
        return snapshot_history.resolve(self.db, self.name, name)

    def manifest(self, name: str) -> Manifest:
        snapshot = self.find_snapshot(name)
        return Manifest.decode(self.keep.get(snapshot.hash), f"snapshot {snapshot.hash}")

    def remove_tag(self, name: str, tag: str) -> None:
        """Remove ``tag`` from the snapshot ``name`` (its other tags stay)."""
        snapshot_history.remove_tag(self.db, self.name, self.find_snapshot(name).hash, tag)

    def results_subdir(self, name: str) -> str | None:
        """Where the snapshot's results went inside each results resource."""
        return self.find_snapshot(name).results_subdir

    def get_results(self, name: str) -> dict[str, Any]:
        """The metrics the snapshot was taken with."""
        return self.find_snapshot(name).metrics

    def delete_snapshot(self, name: str, include_results: bool = True) -> None:
        """Forget the snapshot (gc reclaims the bytes no other snapshot holds); with
        ``include_results``, remove its results subdirectory too."""
        with locked(self.root):
            snapshot = self.find_snapshot(name)
            snapshot_history.delete_snapshot_rows(self.db, self.name, snapshot.hash)
            if include_results and snapshot.results_subdir:
                for resource in self.resources():
                    if resource.role == "results":
                        shutil.rmtree(resource.path / snapshot.results_subdir, ignore_errors=True)
            if self.state.head == snapshot.hash:
                self.state.head = None
                self._save_state()

    def restore(
        self,
        name: str,
        only: Iterable[str] | None = None,
        leave: Iterable[str] | None = None,
        link: LinkMode = "copy",
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Snapshot:
        """Make each resource's directory exactly as in the snapshot, verified (results
        are left as they are). Refused if that would overwrite changes not snapshotted,
        unless ``force``."""
        from .restore import restore_snapshot

        with locked(self.root):
            self.state = LocalState.read(self.root)
            return restore_snapshot(self, name, only, leave, link, force, progress)

    # -- remotes -------------------------------------------------------------------------
    def push(self, remote: str | None = None, progress: ProgressCallback | None = None) -> int:
        """Send every snapshot, its lineage and the bytes the remote lacks; the number of
        snapshots the remote did not have."""
        from .transfer import push_workspace

        return push_workspace(self, remote, progress)

    def pull(
        self,
        remote: str | None = None,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Bring the remote's snapshots, then restore the newest if it is new here;
        refused if that would overwrite changes not snapshotted, unless ``force``.
        Returns the hashes of the snapshots that are new here."""
        from .transfer import pull_workspace

        with locked(self.root):
            self.state = LocalState.read(self.root)
            return pull_workspace(self, remote, force, progress)

    @classmethod
    def clone(
        cls,
        location: str,
        dest: str | os.PathLike[str],
        name: str | None = None,
        snapshot: str | None = None,
        paths: Mapping[str, str | os.PathLike[str]] | None = None,
        endpoint: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Workspace:
        """A new workspace at ``dest`` from the remote ``location`` (a directory or
        ``s3://bucket/prefix``), its newest (or ``snapshot``) restored; ``paths`` put
        named resources somewhere else than where the workspace keeps them."""
        from .transfer import clone_workspace

        if Path(dest).exists() and any(Path(dest).iterdir()):
            raise InvalidInput(f"{dest} exists and is not empty")
        return clone_workspace(cls, location, Path(dest), name, snapshot, paths, endpoint, progress)
