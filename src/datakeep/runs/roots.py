"""gc roots of run records: record payloads and request configs stay while named."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, union

from .schema import records, request_configs

__all__ = ["RunRoots"]


class RunRoots:
    """Registered under the ``datakeep.roots`` entry point group (see pyproject)."""

    name = "runs"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        named = union(
            select(records.c.output_ref).where(records.c.output_ref.is_not(None)),
            select(request_configs.c.digest),
        )
        return conn.execute(named).scalars()
