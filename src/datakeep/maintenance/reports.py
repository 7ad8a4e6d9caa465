"""The last report of each whole-keep check, kept in the index (``keep_meta``), so that
when the keep was last checked and what was found can be shown without checking again
(the web view's health page; ``Keep.last_reports``).

Kept: ``fsck``, ``verify`` of everything, and ``gc`` (a dry run is not kept: it changed
nothing). A summary holds the counts and the first :data:`LISTED` problems; the whole
report is the command's own ``--json``. Saving is best effort: a check whose report
cannot be written (a full disk, a read-only index) still returns its report.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..content import Problem
from ..errors import DatakeepError
from ..index import keep_meta
from ..index.upsert import insert_or_update

if TYPE_CHECKING:
    from ..content import VerifyReport
    from ..index import IndexDatabase
    from .fsck import FsckReport
    from .gc import GcReport

__all__ = ["LISTED", "last_reports", "save_fsck", "save_gc", "save_verify"]

LISTED = 20
_PREFIX = "last_report:"
_log = logging.getLogger("datakeep")


def _problems(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"digest": p.digest, "error": p.error, "path": p.path} for p in problems[:LISTED]]


def save_fsck(db: IndexDatabase, report: FsckReport, repair_index: bool) -> None:
    _save(
        db,
        "fsck",
        {
            "ok": report.ok,
            "checked": report.checked,
            "bytes": report.nbytes,
            "missing": len(report.missing),
            "corrupted": len(report.corrupted),
            "dangling": len(report.dangling),
            "orphans": len(report.orphans),
            "repairs": len(report.repairs) if repair_index else None,
            "problems": _problems(
                [Problem(d, "blob is missing from the store") for d in report.missing]
                + report.corrupted
            ),
        },
    )


def save_verify(db: IndexDatabase, report: VerifyReport) -> None:
    _save(
        db,
        "verify",
        {
            "ok": report.ok,
            "checked": report.checked,
            "bytes": report.nbytes,
            "problem_count": len(report.problems),
            "problems": _problems(report.problems),
        },
    )


def save_gc(db: IndexDatabase, report: GcReport) -> None:
    _save(
        db,
        "gc",
        {
            "swept": len(report.swept),
            "orphans": len(report.orphans),
            "reclaimed_bytes": report.reclaimed_bytes,
            "live": report.live,
            "young": report.young,
        },
    )


def _save(db: IndexDatabase, check: str, summary: dict[str, Any]) -> None:
    row = {"key": _PREFIX + check, "value": json.dumps({"at": time.time(), **summary})}
    try:
        db.transact(
            f"keeping the {check} report",
            lambda c: c.execute(insert_or_update(c, keep_meta, ["key"], ["value"]), [row]),
        )
    except DatakeepError as exc:
        _log.warning("the %s report was not kept: %s", check, exc)


def last_reports(db: IndexDatabase) -> dict[str, dict[str, Any]]:
    """Check name (``fsck``, ``verify``, ``gc``) -> its last summary, with ``at`` (seconds
    since the epoch); checks never run are absent."""
    query = select(keep_meta.c.key, keep_meta.c.value).where(
        keep_meta.c.key.like(_PREFIX.replace("_", "\\_") + "%", escape="\\")
    )
    with db.read("reading the last reports") as conn:
        rows = conn.execute(query).all()
    return {key.removeprefix(_PREFIX): json.loads(value) for key, value in rows}
