"""Restoring a snapshot: each chosen resource's directory made exactly as stored.

An empty or missing directory is exported whole. Otherwise only what differs is
written: the files to put back are first exported, verified, into a hidden staging
directory beside the resource (a damaged blob fails the restore before any file moves),
then the files the snapshot does not have are removed and the staged ones renamed into
place, and directories left empty are removed. Results are never restored: they are
additive.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, select

from ..content import LinkMode
from ..errors import InvalidInput, NotFound
from ..keep import Keep
from ..progress import ProgressCallback
from ..trees.export import export_entries
from ..trees.format import TreeEntry, decode_tree
from .errors import UncommittedChanges
from .lineage import split_ref
from .manifest import Manifest, ManifestResource
from .model import Snapshot
from .s3prefix import S3Prefix
from .schema import lineage
from .states import directory_state, same

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["restore_directory", "restore_snapshot"]


def restore_snapshot(
    ws: Workspace,
    name: str,
    only: Iterable[str] | None,
    leave: Iterable[str] | None,
    link: LinkMode,
    force: bool,
    progress: ProgressCallback | None,
    include_results: bool = False,
) -> Snapshot:
    snapshot = ws.find_snapshot(name)
    manifest = Manifest.decode(ws.keep.get(snapshot.hash), f"snapshot {snapshot.hash}")
    chosen = choose(manifest, only, leave, include_results)
    local = {r.name: r for r in ws.resources()}
    missing = [r.name for r in chosen if r.name not in local]
    if missing:
        raise NotFound(f"the snapshot's resources {missing} are not in this workspace")
    if not force:
        # files only removed since are not lost: the snapshot they were in still has them
        found = ws.status([r.name for r in chosen])
        changes = {name: c for name, c in found.items() if c.added or c.changed}
        if changes:
            listed = "; ".join(
                f"{n}: {len(c.added)} added, {len(c.changed)} changed, {len(c.removed)} removed"
                for n, c in changes.items()
            )
            raise UncommittedChanges(
                f"changes not snapshotted would be overwritten ({listed}); "
                "snapshot them first, or force"
            )
    for resource in chosen:
        here = local[resource.name]
        if here.on_s3:
            S3Prefix(ws.keep, here.stored_path, here.endpoint).restore(resource.tree)
        else:
            restore_directory(ws.keep, here.path, resource.tree, link, progress)
    _restore_lineage(ws, manifest, {r.name for r in chosen})
    ws.state.head = snapshot.hash
    ws.state.write(ws.root)
    return snapshot


def choose(
    manifest: Manifest,
    only: Iterable[str] | None,
    leave: Iterable[str] | None,
    include_results: bool,
) -> list[ManifestResource]:
    names = {r.name: r for r in manifest.resources}
    only_set = None if only is None else set(only)
    leave_set = set(leave or ())
    for asked in (only_set or set()) | leave_set:
        if asked not in names:
            raise NotFound(f"the snapshot has no resource {asked!r} (it has {sorted(names)})")
    if only_set is not None and not include_results:
        results = sorted(n for n in only_set if names[n].role == "results")
        if results:
            raise InvalidInput(f"results are never restored (they are additive): {results}")
    return [
        r
        for r in manifest.resources
        if (only_set is None or r.name in only_set)
        and r.name not in leave_set
        and (include_results or r.role != "results")
    ]


def restore_directory(
    keep: Keep, root: Path, tree: str, link: LinkMode, progress: ProgressCallback | None
) -> None:
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        keep.export(tree, root, link, progress)
        return
    now = directory_state(keep, root, tree)
    if isinstance(now, str):
        return  # the stat cache vouches: already exactly the tree
    entries = decode_tree(keep.get(tree), keep.algorithm)
    wanted = {e.path: e for e in entries}
    write = [
        e for e in entries if e.path not in now or not same(now[e.path], (e.kind, e.mode, e.digest))
    ]
    extra = [path for path in now if path not in wanted]
    staging = root.parent / f".{root.name}.datakeep-restore-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        export_entries(keep.store, write, staging, link, progress, fallback=keep.get)
        for path in sorted(extra, reverse=True):
            if now[path][0] == "d":
                (root / path).rmdir()  # an empty directory the snapshot does not have
            else:
                (root / path).unlink()
        for e in write:
            _put_in_place(root, staging, e)
        _remove_empty_dirs(root, wanted)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _put_in_place(root: Path, staging: Path, e: TreeEntry) -> None:
    """Move the staged entry to its place, replacing whatever kind of thing is there."""
    target = root / e.path
    _clear_way(root, e.path)
    if target.is_dir() and not target.is_symlink():
        if e.kind == "d":
            target.chmod(e.mode)
            return
        shutil.rmtree(target)
    elif e.kind == "d" and (target.exists() or target.is_symlink()):
        target.unlink()
    if e.kind == "d":
        target.mkdir()
        target.chmod(e.mode)
    else:
        os.replace(staging / e.path, target)


def _clear_way(root: Path, path: str) -> None:
    """Make the parent directories of ``path``, replacing a file or link in the way."""
    parent = root
    for part in path.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            parent.unlink()
        parent.mkdir(exist_ok=True)


def _remove_empty_dirs(root: Path, wanted: dict[str, TreeEntry]) -> None:
    needed = {path.rpartition("/")[0] for path in wanted} | set(wanted)
    for directory, _subdirs, _files in os.walk(root, topdown=False):
        rel = Path(directory).relative_to(root).as_posix()
        if rel != "." and rel not in needed and not os.listdir(directory):
            os.rmdir(directory)


def _restore_lineage(ws: Workspace, manifest: Manifest, restored: set[str]) -> None:
    """The lineage of the restored resources' refs becomes the snapshot's."""
    name = ws.name

    def run(conn: Connection) -> None:
        refs = conn.execute(select(lineage.c.ref).where(lineage.c.workspace == name)).scalars()
        for ref in list(refs):
            if split_ref(ref)[0] in restored:
                conn.execute(
                    delete(lineage).where(lineage.c.workspace == name, lineage.c.ref == ref)
                )
        rows = [
            {"workspace": name, "ref": ref, "entry": entry}
            for ref, entry in manifest.lineage.items()
            if split_ref(ref)[0] in restored
        ]
        if rows:
            conn.execute(lineage.insert(), rows)

    ws.db.transact("restoring lineage", run)
