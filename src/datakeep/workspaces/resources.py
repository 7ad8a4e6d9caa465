"""Resources: named directories of a workspace, each with a role, one index row each."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Connection, select

from ..errors import AlreadyExists, InvalidInput, InvalidPath, NotFound
from ..index import IndexDatabase
from ..index.upsert import insert_ignore
from .local import LocalState, check_name
from .model import ROLES, Resource
from .s3prefix import check_location
from .schema import resources

__all__ = ["add_resource", "check_placement", "find_resource", "list_resources", "stored_path_of"]


def list_resources(db: IndexDatabase, root: Path, state: LocalState) -> list[Resource]:
    with db.read("listing resources") as conn:
        rows = conn.execute(
            select(resources.c.name, resources.c.role, resources.c.path, resources.c.endpoint)
            .where(resources.c.workspace == state.name)
            .order_by(resources.c.name)
        ).all()
    return [
        Resource(name, role, _local_path(root, state.paths.get(name, path)), path, endpoint)
        for name, role, path, endpoint in rows
    ]


def _local_path(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) or path.startswith("s3://") else root / path


def stored_path_of(root: Path, where: Path) -> str:
    """``where`` as the workspace records it: relative to the root when inside it."""
    try:
        return where.relative_to(root).as_posix()
    except ValueError:
        return os.fspath(where)


def check_placement(
    root: Path,
    keep_dir: Path,
    where: Path,
    others: list[Resource],
    allow_outside: bool,
) -> None:
    """Refuse the workspace's root, a keep, the inside or the parent of another
    resource, and (unless allowed) a place outside the workspace."""
    if where == root:
        raise InvalidPath("a resource cannot be the workspace's root: name a directory in it")
    if where == keep_dir or keep_dir.is_relative_to(where) or where.is_relative_to(keep_dir):
        raise InvalidPath(f"a resource cannot hold or be inside the keep {keep_dir}")
    if not allow_outside and not where.is_relative_to(root):
        raise InvalidPath(f"{where} is outside the workspace {root} (allow_outside=True to allow)")
    for other in others:
        theirs = other.path.resolve()
        if where == theirs:
            raise InvalidPath(f"{where} is already the resource {other.name!r}")
        if where.is_relative_to(theirs) or theirs.is_relative_to(where):
            raise InvalidPath(f"{where} overlaps the resource {other.name!r} ({theirs})")


def add_resource(
    db: IndexDatabase,
    root: Path,
    keep_dir: Path,
    state: LocalState,
    name: str,
    role: str,
    local_path: str | os.PathLike[str],
    allow_outside: bool = False,
    endpoint: str | None = None,
) -> Resource:
    check_name(name, "resource")
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is none of {', '.join(ROLES)}")
    others = list_resources(db, root, state)
    if any(r.name == name for r in others):
        raise AlreadyExists(f"the workspace already has a resource {name!r}")
    if str(local_path).startswith("s3://"):
        stored = check_location(str(local_path), endpoint)
        where = Path(stored)
        for other in others:
            if other.on_s3 and _overlap(stored, other.stored_path) and other.endpoint == endpoint:
                raise InvalidPath(f"{stored} overlaps the resource {other.name!r}")
    else:
        if endpoint is not None:
            raise InvalidInput("an endpoint goes with s3:// resources only")
        where = (root / local_path).resolve()  # an absolute local_path stays as it is
        if where.exists() and not where.is_dir():
            raise InvalidPath(f"{where} is not a directory")
        check_placement(root, keep_dir, where, [r for r in others if not r.on_s3], allow_outside)
        stored = stored_path_of(root, where)
    row = {
        "workspace": state.name,
        "name": name,
        "role": role,
        "path": stored,
        "endpoint": endpoint,
        "created_at": time.time(),
    }

    def insert(conn: Connection) -> bool:
        added = insert_ignore(conn, resources, ["workspace", "name"], returning=["name"])
        return bool(conn.execute(added, [row]).scalars().all())

    if not db.transact("adding a resource", insert):
        raise AlreadyExists(f"the workspace already has a resource {name!r}")
    if not stored.startswith("s3://"):
        where.mkdir(parents=True, exist_ok=True)
    return Resource(name, role, where, stored, endpoint)


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def find_resource(found: list[Resource], name: str) -> Resource:
    for resource in found:
        if resource.name == name:
            return resource
    names = ", ".join(r.name for r in found) or "none"
    raise NotFound(f"no resource {name!r} in this workspace (it has: {names})")
