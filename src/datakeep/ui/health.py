"""The health page's queries: what can be learnt about a keep's state cheaply and
without writing: the last ``fsck``, ``verify --all`` and ``gc`` (their summaries, kept
in the index by :mod:`datakeep.maintenance.reports`), what damage was found and set aside
(quarantine), the remotes, the pins and the index; any one content can be verified on
demand."""

from __future__ import annotations

import itertools
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from ..content import QUARANTINE
from ..errors import DatakeepError
from ..index import pins, remotes
from ..index.migrate import current_revision
from ..keep import Keep
from ..keepdir import read_config

__all__ = ["LISTED", "health_page", "verify_page"]

LISTED = 100


def health_page(keep: Keep, pins_after: str | None) -> dict[str, Any]:
    config = read_config(keep.path)
    query = select(pins).order_by(pins.c.digest).limit(LISTED + 1)
    if pins_after:
        query = query.where(pins.c.digest > pins_after)
    with keep.db.read("reading the keep's state") as conn:
        revision = current_revision(conn)
        pinned = conn.execute(query).all()
        known = conn.execute(select(remotes).order_by(remotes.c.name)).all()
    more = len(pinned) > LISTED
    pinned = pinned[:LISTED]
    quarantined: list[dict[str, Any]] = []
    quarantine_error = None
    try:
        for blob in itertools.islice(keep.store.backend.list(QUARANTINE), LISTED):
            quarantined.append({"key": blob.key, "size": blob.size, "modified": blob.modified})
    except DatakeepError as exc:
        quarantine_error = str(exc)
    return {
        "keep": {
            "path": str(keep.path),
            "algorithm": keep.algorithm,
            "index": make_url(keep.db.url).render_as_string(hide_password=True),
            "dialect": keep.db.dialect,
            "schema_revision": revision,
            "blobs": {k: v for k, v in config["blobs"].items() if k != "routes"},
        },
        "remotes": [
            {
                "name": r.name,
                "backend": r.backend,
                "config": json.loads(r.config),
                "created_at": r.created_at,
            }
            for r in known
        ],
        "pins": [{"digest": p.digest, "note": p.note, "created_at": p.created_at} for p in pinned],
        "pins_next": pinned[-1].digest if more else None,
        "quarantine": sorted(quarantined, key=lambda q: q["key"]),
        "quarantine_error": quarantine_error,
        "reports": keep.last_reports(),
    }


def verify_page(keep: Keep, name: str) -> dict[str, Any]:
    """Re-hash one content (a tree with every file it names): ``ok`` and the problems."""
    digest = keep.store.resolve(name)
    info = keep.info(digest)
    report = keep.verify_many([info.digest])
    return {
        "digest": info.digest,
        "kind": info.kind,
        "ok": report.ok,
        "checked": report.checked,
        "problems": [
            {"digest": p.digest, "path": p.path, "error": p.error} for p in report.problems
        ],
    }
