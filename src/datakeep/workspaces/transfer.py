"""Push, pull and clone of a workspace through a remote of the keep (a directory, S3).

The bytes travel as any content does (``Keep.push`` / ``Keep.pull``: packs for small
files, verified on arrival). Beside them, each snapshot's history entry (tags, message,
metrics) is a small JSON object under ``workspaces/<name>/snapshots/<algorithm>/<hex>/``,
one new object per push, written create-only: two clones pushing to one remote write
different keys and lose nothing; the newest entry of a snapshot is the one read, and a
push folds the tags it finds there into its own before replacing it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from ..backends import Backend
from ..errors import InvalidInput, NotFound
from ..index.upsert import insert_ignore
from ..keep import init_keep
from ..progress import ProgressCallback
from .errors import UncommittedChanges
from .local import LocalState, check_name
from .manifest import Manifest
from .restore import restore_snapshot
from .schema import resources, snapshot_trees, snapshots, tags

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["clone_workspace", "pull_workspace", "push_workspace"]

_log = logging.getLogger("datakeep")
_ROOT = "workspaces/"


@dataclass(slots=True)
class _Entry:
    record: dict[str, Any]
    keys: list[str]


def _prefix(workspace: str) -> str:
    return f"{_ROOT}{workspace}/snapshots/"


def _remote_entries(backend: Backend, workspace: str) -> dict[str, _Entry]:
    """The newest history entry of each snapshot the remote holds, with every key found."""
    found: dict[str, _Entry] = {}
    for info in backend.list(_prefix(workspace)):
        try:
            record = json.loads(backend.read(info.key))
            hash_ = record["hash"]
        except (ValueError, KeyError, TypeError, NotFound):
            _log.warning("skipping unreadable workspace entry %s on the remote", info.key)
            continue
        entry = found.setdefault(hash_, _Entry(record, []))
        entry.keys.append(info.key)
        if record.get("written_ns", 0) > entry.record.get("written_ns", 0):
            entry.record = record
    return found


def _entry_key(workspace: str, hash_: str) -> str:
    algorithm, _, hexdigest = hash_.partition(":")
    stamp = f"{time.time_ns()}-{secrets.token_hex(4)}"
    return f"{_prefix(workspace)}{algorithm}/{hexdigest}/{stamp}.json"


def push_workspace(ws: Workspace, remote: str | None, progress: ProgressCallback | None) -> int:
    target = ws.keep.remote(remote)
    history = ws.history(newest_first=False)
    digests = [s.hash for s in history] + sorted({t for s in history for t in s.trees.values()})
    ws.keep.push(target.name, digests, progress)
    backend = target.open()
    there = _remote_entries(backend, ws.name)
    new = 0
    for snapshot in history:
        have = there.get(snapshot.hash)
        record = {
            "hash": snapshot.hash,
            "tags": sorted(set(snapshot.tags) | set(have.record["tags"] if have else ())),
            "message": snapshot.message,
            "created_at": snapshot.created_at,
            "metrics": snapshot.metrics,
            "results_subdir": snapshot.results_subdir,
        }
        if have is None:
            new += 1
        elif {k: v for k, v in have.record.items() if k != "written_ns"} == record:
            continue
        record["written_ns"] = time.time_ns()
        backend.create(_entry_key(ws.name, snapshot.hash), json.dumps(record).encode())
        for key in have.keys if have else ():
            backend.delete(key)
    return new


def _fetch(
    ws: Workspace, remote: str, there: dict[str, _Entry], progress: ProgressCallback | None
) -> list[str]:
    """Bring the snapshots the remote has and this keep lacks (manifests, then trees) and
    record them with their tags; tags held here by another snapshot stay here (a
    warning says so). The hashes new here, oldest first."""
    local = {s.hash for s in ws.history()}
    new = sorted((h for h in there if h not in local), key=lambda h: there[h].record["created_at"])
    manifests: dict[str, Manifest] = {}
    if new:
        ws.keep.pull(remote, new, progress)
        for hash_ in new:
            manifests[hash_] = Manifest.decode(ws.keep.get(hash_), f"snapshot {hash_}")
        trees = sorted({t for m in manifests.values() for t in m.trees().values()})
        ws.keep.pull(remote, trees, progress)
    name = ws.name

    def run(conn: Connection) -> None:
        for hash_ in new:
            record = there[hash_].record
            row = {
                "workspace": name,
                "hash": hash_,
                "message": record.get("message", ""),
                "created_at": float(record["created_at"]),
                "metrics": record.get("metrics", {}),
                "results_subdir": record.get("results_subdir"),
            }
            conn.execute(insert_ignore(conn, snapshots, ["workspace", "hash"]), [row])
            conn.execute(
                insert_ignore(conn, snapshot_trees, ["workspace", "hash", "resource"]),
                [
                    {"workspace": name, "hash": hash_, "resource": r, "tree": t}
                    for r, t in manifests[hash_].trees().items()
                ],
            )
        for hash_, entry in there.items():
            for tag in entry.record.get("tags", ()):
                conn.execute(
                    insert_ignore(conn, tags, ["workspace", "tag"]),
                    [{"workspace": name, "tag": tag, "hash": hash_}],
                )

    ws.db.transact("recording pulled snapshots", run)
    held = {t: s.hash for s in ws.history() for t in s.tags}
    for hash_, entry in there.items():
        for tag in entry.record.get("tags", ()):
            if held.get(tag) != hash_:
                _log.warning(
                    "tag %r stays on %s here; the remote puts it on %s", tag, held.get(tag), hash_
                )
    return new


def _adopt_resources(
    ws: Workspace, manifest: Manifest, paths: Mapping[str, str | os.PathLike[str]]
) -> None:
    """Resources of ``manifest`` this workspace does not have yet, added as recorded
    (or where ``paths`` puts them on this machine)."""
    have = {r.name for r in ws.resources()}
    rows = [
        {
            "workspace": ws.name,
            "name": r.name,
            "role": r.role,
            "path": r.path,
            "endpoint": r.endpoint,
            "created_at": time.time(),
        }
        for r in manifest.resources
        if r.name not in have
    ]
    for resource, where in paths.items():
        if resource not in {r.name for r in manifest.resources}:
            raise NotFound(f"the snapshot has no resource {resource!r}")
        ws.state.paths[resource] = os.fspath(Path(where).resolve())
    ws.state.write(ws.root)
    if rows:
        ws.db.transact(
            "adding resources",
            lambda conn: conn.execute(insert_ignore(conn, resources, ["workspace", "name"]), rows),
        )


def pull_workspace(
    ws: Workspace, remote: str | None, force: bool, progress: ProgressCallback | None
) -> list[str]:
    target = ws.keep.remote(remote)
    there = _remote_entries(target.open(), ws.name)
    head = ws.head()
    newest = max(there, key=lambda h: there[h].record["created_at"], default=None)
    moves_on = newest is not None and (
        head is None
        or (newest != head.hash and there[newest].record["created_at"] > head.created_at)
    )
    if moves_on and not force:
        # checked before anything is fetched: a refused pull changes nothing
        changed = [
            name
            for name, c in ws.status().items()
            if (c.added or c.changed) and _role(ws, name) != "results"
        ]
        if changed:
            raise UncommittedChanges(
                f"pulling would overwrite changes not snapshotted in {sorted(changed)}; "
                "snapshot them first, or force"
            )
    new = _fetch(ws, target.name, there, progress)
    if moves_on and newest is not None:
        _adopt_resources(ws, Manifest.decode(ws.keep.get(newest), f"snapshot {newest}"), {})
        restore_snapshot(ws, newest, None, None, "copy", True, progress)
    return new


def _role(ws: Workspace, name: str) -> str | None:
    return next((r.role for r in ws.resources() if r.name == name), None)


def clone_workspace(
    cls: type[Workspace],
    location: str,
    dest: Path,
    name: str | None,
    snapshot: str | None,
    paths: Mapping[str, str | os.PathLike[str]] | None,
    endpoint: str | None,
    progress: ProgressCallback | None,
) -> Workspace:
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    keep = init_keep(dest)
    try:
        remote = keep.add_remote("origin", location, endpoint)
        backend = remote.open()
        names = sorted({info.key.split("/")[1] for info in backend.list(_ROOT)})
        if not names:
            raise NotFound(f"the remote {location} holds no workspace (push one there first)")
        if name is None:
            if len(names) != 1:
                raise InvalidInput(
                    f"name the workspace to clone: the remote holds {names or 'none'}"
                )
            name = names[0]
        elif name not in names:
            raise NotFound(f"the remote holds no workspace {name!r} (it holds {names})")
        state = LocalState(check_name(name, "workspace"), paths={})
        state.write(dest)
        ws = cls(dest, keep, state)
        there = _remote_entries(backend, name)
        if not there:
            raise NotFound(f"the remote holds no snapshot of workspace {name!r}")
        _fetch(ws, remote.name, there, progress)
        chosen = ws.find_snapshot(snapshot) if snapshot else ws.history()[0]
        _adopt_resources(
            ws, Manifest.decode(keep.get(chosen.hash), f"snapshot {chosen.hash}"), paths or {}
        )
        restore_snapshot(ws, chosen.hash, None, None, "copy", True, progress, include_results=True)
        return ws
    except BaseException:
        keep.close()
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(
                    child
                ) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise
