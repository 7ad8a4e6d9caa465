"""The index schema revisions this version of datakeep knows.

Apart from :mod:`datakeep.index.migrate`, which applies them, so that a reader of the
index that does not load SQLAlchemy (:mod:`datakeep.trees.unchanged`) can check them too.
"""

from __future__ import annotations

__all__ = ["HEAD", "REVISIONS"]

# Every revision in order, oldest first; a test checks this against the migration scripts.
REVISIONS: tuple[str, ...] = (
    "0001_initial",
    "0002_pins",
    "0003_runs",
    "0004_inline_blobs",
    "0005_remotes",
    "0006_files",
    "0007_records",
    "0008_workspaces",
    "0009_aliases",
    "0010_run_fields",
)
HEAD = REVISIONS[-1]
