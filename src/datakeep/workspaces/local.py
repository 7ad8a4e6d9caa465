"""A workspace's own file, ``.datakeep-workspace.json`` at its root: its name, where its
keep is, the snapshot its directories were last made from, and this machine's paths.

What all copies of a workspace share (resources, snapshots, tags, lineage) is in the
index; this file holds only what belongs to one directory on one machine. It is replaced
whole (temporary file, fsync, rename), so a reader never sees half of it, and commands
that change the workspace's files hold ``.datakeep-workspace.lock`` so that two
processes snapshotting or restoring at once take turns.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound

__all__ = [
    "DEFAULT_RESULTS_TEMPLATE",
    "STATE_FILE",
    "LocalState",
    "check_name",
    "find_root",
    "locked",
]

STATE_FILE = ".datakeep-workspace.json"
LOCK_FILE = ".datakeep-workspace.lock"
_FORMAT = "datakeep.workspace@v1"
DEFAULT_RESULTS_TEMPLATE = "snapshots/{date}-{time}-{tag}"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"{what} name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(slots=True)
class LocalState:
    name: str
    keep: str | None = None
    """The directory holding the keep's ``.datakeep``; None: the workspace's root."""
    head: str | None = None
    """The snapshot the resources were last snapshotted as or restored from."""
    results_template: str = DEFAULT_RESULTS_TEMPLATE
    paths: dict[str, str] = field(default_factory=dict)
    """Resources whose directory on this machine is not the one the workspace records."""

    @classmethod
    def read(cls, root: Path) -> LocalState:
        try:
            data = json.loads((root / STATE_FILE).read_text())
        except FileNotFoundError:
            raise NotFound(f"no workspace at {root} (run 'datakeep ws init')") from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"unreadable {root / STATE_FILE}: {exc}") from exc
        if not isinstance(data, dict) or data.pop("format", None) != _FORMAT:
            raise InvalidInput(f"{root / STATE_FILE} is not a {_FORMAT} file")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidInput(f"{root / STATE_FILE}: {exc}") from exc

    def write(self, root: Path) -> None:
        data: dict[str, Any] = {"format": _FORMAT, **asdict(self)}
        temp = root / f".{STATE_FILE}.tmp-{os.getpid()}"
        with open(temp, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, root / STATE_FILE)


def find_root(start: str | os.PathLike[str] = ".") -> Path:
    """The workspace holding ``start``: the nearest directory up with a workspace file."""
    here = Path(start).resolve()
    for directory in (here, *here.parents):
        if (directory / STATE_FILE).is_file():
            return directory
    raise NotFound(f"no workspace in {here} or any parent directory (run 'datakeep ws init')")


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the workspace's lock: one snapshot, restore or pull at a time."""
    with open(root / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
