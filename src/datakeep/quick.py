"""The command line's quick answers on an embedded keep, without loading SQLAlchemy.

Starting Python and importing click takes about 50 ms here; importing SQLAlchemy, which
the full :class:`~datakeep.keep.Keep` needs, takes 150-200 ms more. The small commands
(``ls``, ``info``, ``cat`` of a small blob, ``tag``, ``remote ls``, a no-op ``push``,
``verify`` of a small blob) need a few rows and maybe one small read, so on a keep whose
index is the SQLite file and whose bytes are a local directory they are answered here,
through the standard library's ``sqlite3``.

:class:`QuickKeep` offers those methods of :class:`~datakeep.keep.Keep` under the same
names, and answers only the common case: the index has exactly this version's schema
(:func:`~datakeep.index.plain.connect_plain`), the content is there, small and intact, the
lease is free. Anything else raises :class:`Unanswered` before any output, and the command
runs again on the full keep, which upgrades, waits, falls back to mirrors and reports
errors as usual. So the two paths can only differ in speed; the tests run every command
both ways and compare (``DATAKEEP_QUICK=0`` turns this path off).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .backends import LocalBackend, Remote
from .content.model import (
    CHUNK,
    INLINE_KEY,
    PRIMARY,
    SMALL_FILE,
    Content,
    Page,
    VerifyReport,
    check_tags,
    with_tags,
)
from .content.names import CANDIDATES, one_candidate, prefix_of
from .content.packs import pack_member
from .content.pointers import key_of_pointer
from .content.verify import check_bytes
from .digest import parse_digest
from .errors import DatakeepError, IndexFailure, InvalidInput
from .index.plain import connect_plain
from .keepdir import find_keep_dir, read_config
from .progress import ProgressCallback, TransferReport

__all__ = ["QuickKeep", "Unanswered", "open_quick"]


class Unanswered(Exception):
    """The quick path cannot answer this; the command runs on the full keep."""


def open_quick(start: str | os.PathLike[str] = ".") -> QuickKeep | None:
    """The quick reader of the keep for ``start``, or None where only the full keep can
    serve (no keep, a PostgreSQL index, S3 or routed bytes, another schema revision)."""
    if os.environ.get("DATAKEEP_QUICK") == "0":
        return None
    try:
        keep_dir = find_keep_dir(start)
        config = read_config(keep_dir)
        index, blobs, algorithm = config["index"], config["blobs"], config["algorithm"]
        local = blobs.keys() == {"backend", "root"} and blobs["backend"] == LocalBackend.name
        if "://" in index or "route_by" in config or not local:
            return None
        db = connect_plain(keep_dir / index, algorithm)
        if db is None:
            return None
        return QuickKeep(keep_dir / index, algorithm, db, LocalBackend(keep_dir / blobs["root"]))
    except (DatakeepError, KeyError, TypeError, AttributeError, OSError):
        return None  # the full keep says what is wrong


class QuickKeep:
    """The small reads (and ``tag``) of :class:`~datakeep.keep.Keep` on an embedded keep."""

    def __init__(
        self, index: Path, algorithm: str, db: sqlite3.Connection, backend: LocalBackend
    ) -> None:
        self.index = index
        self.algorithm = algorithm
        self.db = db
        self.backend = backend

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> QuickKeep:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a query. A failing read is an error, not a case for the full keep,
        which would read the same file: so ``ls`` never prints a page twice."""
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise IndexFailure(f"reading the index failed: {exc}") from exc

    # -- names ---------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """As :meth:`Catalog.resolve <datakeep.content.catalog.Catalog.resolve>`."""
        digest, is_prefix = prefix_of(name, self.algorithm)
        if not is_prefix:
            return digest
        found = self._rows(
            "SELECT digest FROM contents WHERE digest >= ? AND digest < ? ORDER BY digest LIMIT ?",
            (digest, digest + "g", CANDIDATES),
        )
        return one_candidate(name, digest, [row[0] for row in found])

    def _canonical(self, digest: str) -> str:
        parsed = parse_digest(digest)
        if parsed.algorithm == self.algorithm:
            return digest
        found = self._rows("SELECT digest FROM aliases WHERE alias = ? LIMIT 2", (str(parsed),))
        if len(found) != 1:
            raise Unanswered("no alias or a shared one")
        return str(found[0][0])

    # -- lookups -------------------------------------------------------------------------
    def info(self, digest: str) -> Content:
        found = self._load([self._canonical(digest)])
        if not found:
            raise Unanswered("not in the keep")
        return found[0]

    def aliases(self, digest: str) -> list[str]:
        rows = self._rows("SELECT alias FROM aliases WHERE digest = ?", (self._canonical(digest),))
        return sorted(row[0] for row in rows)

    def _load(self, digests: Sequence[str]) -> list[Content]:
        if not digests:
            return []
        marks = ",".join("?" * len(digests))
        rows = self._rows(
            "SELECT contents.digest, size, kind, created_at, key, value FROM contents"
            " LEFT JOIN tags ON tags.digest = contents.digest"
            f" WHERE contents.digest IN ({marks})",
            digests,
        )
        return with_tags(rows, digests)

    def find(
        self,
        tags: Mapping[str, str] | None = None,
        kind: str | None = None,
        limit: int = 100,
        after: str | None = None,
        has_tags: Iterable[str] = (),
        tag_prefixes: Mapping[str, str] | None = None,
    ) -> Page:
        """As :meth:`Keep.find <datakeep.keep.Keep.find>`: the same conditions in SQL text."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        if isinstance(has_tags, str):
            raise InvalidInput("has_tags takes a list of tag names, not one string")
        tagged = "EXISTS (SELECT 1 FROM tags WHERE tags.digest = contents.digest AND key = ?"
        where: list[str] = []
        params: list[Any] = []
        for key, value in check_tags(tags).items():
            where.append(f"{tagged} AND value = ?)")
            params += [key, value]
        for key, prefix in check_tags(tag_prefixes).items():
            where.append(f"{tagged} AND substr(value, 1, ?) = ?)")
            params += [key, len(prefix), prefix]
        for key in check_tags(dict.fromkeys(has_tags, "")):
            where.append(f"{tagged})")
            params.append(key)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if after is not None:
            where.append("digest > ?")
            params.append(str(parse_digest(after)))
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            f"SELECT digest FROM contents{condition} ORDER BY digest LIMIT ?", [*params, limit + 1]
        )
        digests = [row[0] for row in rows[:limit]]
        return Page(self._load(digests), digests[-1] if len(rows) > limit else None)

    # -- reads ---------------------------------------------------------------------------
    def get(self, digest: str) -> bytes:
        """The bytes of a small content, verified."""
        digest = self._canonical(digest)
        found = self._rows(
            "SELECT size, pointer FROM contents JOIN placements"
            " ON placements.digest = contents.digest AND location = ?"
            " WHERE contents.digest = ?",
            (PRIMARY, digest),
        )
        if not found or found[0][0] > SMALL_FILE:
            raise Unanswered("absent, or too large to read whole")
        size, key = int(found[0][0]), key_of_pointer(found[0][1])
        try:
            data = self._read(key, digest)
            check_bytes(data, digest, size)
        except (DatakeepError, OSError) as exc:  # the full keep tries mirrors, or says why
            raise Unanswered(str(exc)) from exc
        return data

    def _read(self, key: str, digest: str) -> bytes:
        member = pack_member(key)
        if member is not None:
            return self.backend.read(member.pack, member.offset, member.end)
        if key != INLINE_KEY:
            return self.backend.read(key)
        found = self._rows("SELECT data FROM inline_blobs WHERE digest = ?", (digest,))
        if not found:
            raise Unanswered("inline blob missing")
        return bytes(found[0][0])

    def stream(
        self, digest: str, chunk_size: int = CHUNK, verify_first: bool = True
    ) -> Iterator[bytes]:
        """Chunks of a small content, all verified before the first is handed out."""
        view = memoryview(self.get(digest))
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])

    def verify_many(
        self,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        shallow: bool = False,
    ) -> VerifyReport:
        """A good report for small, intact blobs; anything else is the full keep's."""
        if digests is None:
            raise Unanswered("everything is the full verify's")
        report = VerifyReport()
        for digest in sorted({str(parse_digest(d)) for d in digests}):
            if parse_digest(digest).algorithm != self.algorithm:
                raise Unanswered("an alias")
            if self.info(digest).kind != "blob":
                raise Unanswered("a tree is checked with its files")
            report.nbytes += len(self.get(digest))
            report.checked += 1
        return report

    # -- tags ----------------------------------------------------------------------------
    def tag(self, digest: str, tags: Mapping[str, str]) -> None:
        """As :meth:`Keep.tag <datakeep.keep.Keep.tag>`, under the same shared write lease
        (taken only if free at once: a wait is the full keep's)."""
        checked = sorted(check_tags(tags).items())
        digest = self.info(digest).digest
        lease = os.open(f"{self.index}-lease", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(lease, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Unanswered("gc holds the keep") from None
            db = connect_plain(self.index, self.algorithm, writable=True)
            if db is None:
                raise Unanswered("the index changed")
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT INTO tags (digest, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (digest, key) DO UPDATE SET value = excluded.value",
                    [(digest, key, value) for key, value in checked],
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:  # nothing was written: the full keep tries again
                raise Unanswered(str(exc)) from exc
            finally:
                db.close()  # rolls back what was not committed
        finally:
            os.close(lease)

    # -- remotes -------------------------------------------------------------------------
    @property
    def remotes(self) -> list[Remote]:
        rows = self._rows("SELECT name, backend, config FROM remotes ORDER BY name")
        return [Remote(name, backend, json.loads(config)) for name, backend, config in rows]

    def push(
        self,
        remote: str | None = None,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        verify: bool = False,
    ) -> TransferReport:
        """The report of a push with nothing to send: the inventory already places every
        content at the remote. Anything to send (or check) is the full keep's."""
        names = [r.name for r in self.remotes]
        if digests is not None or verify or (remote is None and len(names) != 1):
            raise Unanswered("a push that may send")
        name = names[0] if remote is None else remote
        if name not in names:
            raise Unanswered("no such remote")
        unsent = self._rows(
            "SELECT 1 FROM placements AS ours WHERE location = ? AND NOT EXISTS"
            " (SELECT 1 FROM placements AS theirs"
            "  WHERE theirs.digest = ours.digest AND theirs.location = ?) LIMIT 1",
            (PRIMARY, name),
        )
        if unsent:
            raise Unanswered("something to send")
        return TransferReport()
