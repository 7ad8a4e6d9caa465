"""Lineage: which step made each output, from which inputs and code, at which versions.

A ref is a resource (``data``) or a path inside one (``data/train.csv``). Each entry is
one run of a step; it is kept once per output, so the entry of a ref is found by one
key. A version is a digest (the resource's tree, a file, or a directory's entries as a
tree of their own); data not yet snapshotted gets a ``pending:`` placeholder, which the
next snapshot turns into the digest it stores. Before a step runs, the versions its
inputs were derived from are compared: one ref reached at two versions means the step
would mix old and new data, and it is refused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select

from ..errors import InvalidInput
from ..trees.format import check_relative_path
from .errors import LineageConsistencyError
from .schema import lineage as lineage_rows

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["Lineage", "Step", "enclosing", "overlaps", "resolve_pending", "split_ref"]

PENDING = "pending:"


def split_ref(ref: str) -> tuple[str, str]:
    """(resource, path inside it) of a ref; the path is '' for the whole resource."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("a lineage ref is a resource name or resource/path")
    check_relative_path(ref)
    resource, _, sub = ref.partition("/")
    return resource, sub


def overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def enclosing(entries: Mapping[str, dict[str, Any]], ref: str) -> tuple[str, dict[str, Any]] | None:
    """The entry whose output is ``ref`` or holds it."""
    parts = ref.split("/")
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[:n])
        if candidate in entries:
            return candidate, entries[candidate]
    return None


class Step:
    """A running step; outputs are added with :meth:`add_output` (or given up front)."""

    def __init__(self, name: str, params: Mapping[str, Any], started_at: float) -> None:
        self.name = name
        self.params = dict(params)
        self.step_id = uuid.uuid4().hex
        self.started_at = started_at
        self.inputs: list[dict[str, str]] = []
        self.code: list[dict[str, str]] = []
        self.outputs: list[str] = []
        self._check: Callable[[str], None] = lambda ref: None

    def add_output(self, ref: str) -> None:
        self._check(ref)
        for other in self.outputs:
            if overlaps(ref, other):
                raise InvalidInput(
                    f"output {ref!r} overlaps output {other!r} of step {self.name!r}"
                )
        self.outputs.append(ref)


class Lineage:
    """``ws.lineage``: record steps, ask where data came from."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- the current lineage -------------------------------------------------------------
    def _rows(self, conn: Connection) -> dict[str, dict[str, Any]]:
        rows = conn.execute(
            select(lineage_rows.c.ref, lineage_rows.c.entry).where(
                lineage_rows.c.workspace == self._ws.name
            )
        )
        return {ref: dict(entry) for ref, entry in rows}

    def _current(self) -> dict[str, dict[str, Any]]:
        with self._ws.db.read("reading lineage") as conn:
            return self._rows(conn)

    def entries(self) -> list[dict[str, Any]]:
        """Every step whose outputs are current, oldest first."""
        unique = {e["step_id"]: e for e in self._current().values()}
        return sorted(unique.values(), key=lambda e: (e["finished_at"], e["step_id"]))

    def entry(self, ref: str) -> dict[str, Any] | None:
        """The step that made ``ref`` (or the output holding it), None for none."""
        split_ref(ref)
        found = enclosing(self._current(), ref)
        return None if found is None else found[1]

    def derived_from(self, ref: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every step upstream of ``ref``, nearest first, and warnings: inputs with no
        lineage that are not source data, and inputs changed since a step read them."""
        split_ref(ref)
        current = self._current()
        roles = {r.name: r.role for r in self._ws.resources()}
        steps: list[dict[str, Any]] = []
        warnings: list[str] = []
        seen: set[str] = set()
        queue = [ref]
        while queue:
            wanted = queue.pop(0)
            found = enclosing(current, wanted)
            if found is None:
                if roles.get(split_ref(wanted)[0]) in ("intermediate-data", "results"):
                    warnings.append(f"{wanted}: no lineage recorded for derived data")
                continue
            _, entry = found
            if entry["step_id"] in seen:
                continue
            seen.add(entry["step_id"])
            steps.append(entry)
            for used in entry["inputs"] + entry["code"]:
                now = self.version_of(used["ref"], current)
                if now != used["version"]:
                    warnings.append(
                        f"{used['ref']}: step {entry['step']!r} read version {used['version']},"
                        f" now {now}"
                    )
                queue.append(used["ref"])
        return steps, warnings

    def version_of(self, ref: str, current: Mapping[str, dict[str, Any]] | None = None) -> str:
        """The version of ``ref`` now: the output of the step that made it, else its
        version in the last snapshot if its resource has not changed since, else pending."""
        if current is None:
            current = self._current()
        found = enclosing(current, ref)
        if found is not None:
            output, entry = found
            version = next(o["version"] for o in entry["outputs"] if o["ref"] == output)
            return version if output == ref else f"{version}/{ref[len(output) + 1 :]}"
        resource, sub = split_ref(ref)
        return self._ws.source_version(resource, sub) or f"{PENDING}{ref}"

    # -- steps ---------------------------------------------------------------------------
    @contextmanager
    def step(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        inputs: Iterable[str] = (),
        code: Iterable[str] = (),
        outputs: Iterable[str] = (),
    ) -> Iterator[Step]:
        """Record a step: its inputs and code are read now (and checked for consistency),
        its outputs are recorded when the block ends; a block that raises clears the
        lineage of its outputs instead, since what they hold is no longer known."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("a step needs a name")
        names = {r.name for r in self._ws.resources()}

        def check(ref: str) -> None:
            if split_ref(ref)[0] not in names:
                raise InvalidInput(f"{ref!r} is in no resource of this workspace")

        step = Step(name, params or {}, time.time())
        step._check = check
        current = self._current()
        for ref in inputs:
            check(ref)
            step.inputs.append({"ref": ref, "version": self.version_of(ref, current)})
        for ref in code:
            check(ref)
            step.code.append({"ref": ref, "version": self.version_of(ref, current)})
        self._check_consistent(step, current)
        for ref in outputs:
            step.add_output(ref)
        try:
            yield step
        except BaseException:
            self._replace(step.outputs, None)
            raise
        self._replace(step.outputs, step)

    def _check_consistent(self, step: Step, current: Mapping[str, dict[str, Any]]) -> None:
        seen: dict[str, tuple[str, str]] = {}  # ref -> (version, reached through)
        for used in step.inputs + step.code:
            for ref, version in self._closure(used["ref"], used["version"], current):
                if ref in seen and seen[ref][0] != version:
                    raise LineageConsistencyError(
                        f"step {step.name!r} would read {ref} at version {version} through "
                        f"{used['ref']} and at version {seen[ref][0]} through {seen[ref][1]}: "
                        "re-run the steps in between first"
                    )
                seen.setdefault(ref, (version, used["ref"]))

    def _closure(
        self, ref: str, version: str, current: Mapping[str, dict[str, Any]]
    ) -> Iterator[tuple[str, str]]:
        """(ref, version) of ``ref`` and of everything its current version came from."""
        stack = [(ref, version)]
        visited: set[tuple[str, str]] = set()
        while stack:
            item = stack.pop()
            if item in visited:
                continue
            visited.add(item)
            yield item
            found = enclosing(current, item[0])
            if found is None or self.version_of(item[0], current) != item[1]:
                continue  # what an older version came from is not known any more
            stack.extend((u["ref"], u["version"]) for u in found[1]["inputs"] + found[1]["code"])

    def _replace(self, outputs: list[str], step: Step | None) -> None:
        """Drop every entry overlapping ``outputs``; with ``step``, record it for them."""
        if not outputs:
            return
        workspace = self._ws.name
        entry = None
        if step is not None:
            entry = {
                "step": step.name,
                "step_id": step.step_id,
                "params": step.params,
                "started_at": step.started_at,
                "finished_at": time.time(),
                "inputs": step.inputs,
                "code": step.code,
                "outputs": [{"ref": o, "version": PENDING + step.step_id} for o in step.outputs],
            }

        def run(conn: Connection) -> None:
            stale = [ref for ref in self._rows(conn) if any(overlaps(ref, o) for o in outputs)]
            for ref in stale:
                conn.execute(
                    delete(lineage_rows).where(
                        lineage_rows.c.workspace == workspace, lineage_rows.c.ref == ref
                    )
                )
            if entry is not None:
                conn.execute(
                    lineage_rows.insert(),
                    [{"workspace": workspace, "ref": o, "entry": entry} for o in outputs],
                )

        self._ws.db.transact("recording lineage", run)


def resolve_pending(
    entries: Mapping[str, dict[str, Any]], version_at: Callable[[str], str | None]
) -> dict[str, dict[str, Any]]:
    """The entries with every pending version replaced by the ref's version in the
    snapshot being taken (``version_at``), as that snapshot keeps them."""
    resolved: dict[str, dict[str, Any]] = {}
    for ref, entry in entries.items():
        fixed = dict(entry)
        for part in ("inputs", "code", "outputs"):
            fixed[part] = [
                {"ref": u["ref"], "version": version_at(u["ref"]) or "missing"}
                if u["version"].startswith(PENDING)
                else u
                for u in entry[part]
            ]
        resolved[ref] = fixed
    return resolved
