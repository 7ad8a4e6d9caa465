"""Repair: find every content of the keep that is missing or damaged and fetch a good copy
from the remotes, verified; say what no remote could give."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..content import ContentStore, Problem
from ..errors import DatakeepError
from ..progress import Progress, ProgressCallback
from ..trees.format import tree_members
from .pull import pull_into
from .registry import TransferReport, list_remotes

__all__ = ["RepairReport", "repair"]


@dataclass(slots=True)
class RepairReport:
    """What :func:`repair` found and fixed."""

    checked: int = 0
    """Contents re-hashed."""
    repaired: dict[str, str] = field(default_factory=dict)
    """Digest -> the remote whose good copy replaced a missing or damaged one."""
    unrecoverable: list[Problem] = field(default_factory=list)
    """Contents still missing or damaged: no remote held a good copy."""

    @property
    def ok(self) -> bool:
        return not self.unrecoverable


def repair(store: ContentStore, progress: ProgressCallback | None = None) -> RepairReport:
    """Re-hash every stored content; fetch each missing or damaged one (a damaged copy
    is set aside under ``quarantine/`` first), each content the index records without a
    local copy, and each file a tree names that the index lacks, from the remotes in
    name order until one gives a good copy."""
    report = RepairReport()
    with store.leases.shared():
        wanted = _damaged(store, report, progress) | store.without_local_copy()
        wanted |= _dangling_members(store)
        why = dict.fromkeys(wanted, "no remote is configured")
        for remote in list_remotes(store):
            if not why:
                break
            failures: dict[str, str] = {}
            pull_into(
                store, remote.name, remote.open(), sorted(why), TransferReport(), None, failures
            )
            for digest in why.keys() - failures.keys():
                report.repaired[digest] = remote.name
            why = {d: f"{remote.name}: {failures[d]}" for d in failures if d in why}
    report.unrecoverable = [Problem(d, f"no good copy found ({e})") for d, e in sorted(why.items())]
    return report


def _damaged(
    store: ContentStore, report: RepairReport, progress: ProgressCallback | None
) -> set[str]:
    """Digests whose local copy is missing or fails its check (then set aside)."""
    damaged = set()
    for item in store.stored():
        if store.check_or_set_aside(item) in {"gone", "set aside"}:
            damaged.add(item.digest)
        report.checked += 1
        if progress is not None:
            progress(Progress("repair", report.checked, None, item.size))
    return damaged


def _dangling_members(store: ContentStore) -> set[str]:
    """Files named by a readable tree that the index does not hold."""
    named: set[str] = set()
    for tree in store.iter_all(kind="tree"):
        try:
            named.update(tree_members(store.get(tree.digest), store.algorithm))
        except (DatakeepError, OSError):
            continue  # a damaged tree is fetched again; its files are checked by the pull
    return store.missing(named)
