"""A keep: one ``.datakeep/`` directory tying an index, a blob backend and a stat cache
(its layout: :mod:`datakeep.keepdir`). :class:`Keep` is the one facade over the content
store, trees, remotes and maintenance; features build on it."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from .backends import open_backend
from .content import Content, ContentStore, LinkMode, Page, Router, fanout_key, tag_router
from .digest import DEFAULT_ALGORITHM, check_algorithm
from .errors import AlreadyExists, IndexFailure, IntegrityError, InvalidInput, InvalidPath, NotFound
from .index import IndexDatabase, ensure_schema, recorded_algorithm
from .keepdir import (
    CONFIG_FILE,
    KEEP_DIR,
    check_settings,
    create_keep_dir,
    find_keep_dir,
    index_url,
    read_config,
    stat_cache_path,
)
from .progress import ProgressCallback
from .reads import MirroredReads
from .trees.format import decode_tree
from .trees.put import put_tree
from .trees.scan import DirectoryScan
from .trees.statcache import StatCache

if TYPE_CHECKING:
    from .maintenance import FsckReport, GcReport
    from .maintenance.verify import VerifyReport
    from .remotes import Remote, RepairReport, TransferReport

__all__ = ["KEEP_DIR", "Keep", "find_keep_dir", "init_keep"]

T = TypeVar("T")
_log = logging.getLogger("datakeep")


def init_keep(
    path: str | os.PathLike[str] = ".",
    algorithm: str | None = None,
    index: str | None = None,
    blobs: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    routes: Mapping[str, str] | None = None,
    route_by: str | None = None,
    router: Router | None = None,
    exist_ok: bool = False,
) -> Keep:
    """Create ``path/.datakeep`` and return the open keep (with ``router``, as :class:`Keep`).

    ``algorithm``: of every digest (default BLAKE3). With ``exist_ok`` a keep already in
    exactly ``path`` is opened instead (no upward search, no ``DATAKEEP_DIR``), so many
    processes may call this at once on a new directory: one creates, all open. A setting
    given that the existing keep's ``keep.json`` contradicts is refused.

    ``index``: a database URL (default ``index.sqlite`` in the keep). ``blobs``: a
    directory for the bytes (default ``objects/`` in the keep; an absolute path, since a
    shared directory does not move with the keep) or ``s3://bucket/prefix`` with an
    optional ``endpoint`` for S3-compatible servers; credentials come from the AWS
    environment or config files, never from keep.json.

    ``routes`` (S3 only) name other ``s3://bucket/prefix`` locations on the same endpoint;
    ``route_by`` a tag whose value picks one: with ``route_by="kind"`` and
    ``routes={"model": "s3://models/team"}``, content put with ``kind=model`` is stored in
    the ``models`` bucket. A Python router can choose too (``Keep(..., router=)``).
    """
    target = Path(path).resolve()
    if target.name == KEEP_DIR:
        raise InvalidPath(f"give the directory that holds {KEEP_DIR}, not {target}")
    existed = (target / KEEP_DIR).exists()
    settings = (index, blobs, endpoint, routes, route_by)
    try:
        keep_dir = create_keep_dir(target, algorithm or DEFAULT_ALGORITHM, *settings)
    except AlreadyExists:
        if not exist_ok:
            raise
        # there already, or another process created it meanwhile: opened like any other
        check_settings(target / KEEP_DIR, algorithm, *settings)
        return Keep(target / KEEP_DIR, router)
    try:
        return Keep(keep_dir, router)
    except BaseException:
        # an unreachable or refused index: leave nothing behind that names it
        if existed:
            (keep_dir / CONFIG_FILE).unlink()
        else:
            shutil.rmtree(keep_dir, ignore_errors=True)
        raise


class Keep(MirroredReads):
    """An open keep. Use :func:`datakeep.open` or :func:`datakeep.init` to get one."""

    def __init__(self, keep_dir: Path, router: Router | None = None) -> None:
        """``router`` chooses the backend key of new content from its digest and tags
        (default: the fan-out layout, or the keep's ``route_by`` tag)."""
        self.path = keep_dir
        self.on_fallback = None
        config = read_config(keep_dir)
        self.algorithm = check_algorithm(config["algorithm"])
        self.db = IndexDatabase(index_url(keep_dir, config["index"]))
        blobs = dict(config["blobs"])
        backend_name = blobs.pop("backend")
        if "root" in blobs:
            blobs["root"] = keep_dir / blobs["root"]  # an absolute root stays as it is
        backend = open_backend(backend_name, blobs)
        ensure_schema(self.db)
        if (stored := recorded_algorithm(self.db, self.algorithm)) != self.algorithm:
            where = self.path / CONFIG_FILE
            raise IndexFailure(f"the index uses {stored} digests but {where} says {self.algorithm}")
        if router is None:
            router = fanout_key
            if "route_by" in config:
                router = tag_router(config["route_by"], blobs.get("routes", {}))
        self.store = ContentStore(self.db, backend, self.algorithm, router)
        self.store.shown_from = str(keep_dir.parent)
        self.stat_cache = StatCache(stat_cache_path(keep_dir))

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self.stat_cache.close()
        self.db.dispose()

    def __enter__(self) -> Keep:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Keep {self.path} {self.algorithm}>"

    # -- writing -------------------------------------------------------------------------
    def put(
        self, data: bytes, tags: Mapping[str, str] | None = None, expect: str | None = None
    ) -> Content:
        """Store bytes; identical content is stored once. Returns what the index holds.
        ``expect``: a digest the caller knows (``sha256:...``, ``md5:...``), checked in the
        same pass (a mismatch: :class:`IntegrityError`, nothing stored), then an alias."""
        return self.store.put(data, tags, expect)

    def put_stream(
        self,
        source: Iterable[bytes] | BinaryIO,
        tags: Mapping[str, str] | None = None,
        expect: str | None = None,
    ) -> Content:
        """Store an iterable of byte chunks or a binary file object, hashed as it streams
        (``expect`` as for :meth:`put`)."""
        return self.store.put_stream(source, tags, expect)

    def put_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        expect: str | None = None,
    ) -> Content:
        """Store one file. ``link='hardlink'`` shares its inode and makes it read-only
        (``expect`` as for :meth:`put`, checked before anything is linked)."""
        return self.store.put_file(path, tags, link, expect)

    def put_tree(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        progress: ProgressCallback | None = None,
        scanned: DirectoryScan | None = None,
    ) -> Content:
        """Store a directory; returns the tree. Unchanged files are not re-read. ``scanned``:
        the directory as :mod:`datakeep.trees.unchanged` just read it, not read again."""
        with self.store.leases.shared():
            return put_tree(
                self.store, self.stat_cache, Path(path), dict(tags or {}), link, progress, scanned
            )

    def put_path(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        progress: ProgressCallback | None = None,
        scanned: DirectoryScan | None = None,
    ) -> Content:
        """A file with :meth:`put_file`, a directory with :meth:`put_tree`."""
        target = Path(path)
        if target.is_dir():  # a link to a directory given here is followed, as cp -r does
            return self.put_tree(target, tags, link, progress, scanned)
        if not target.exists() and not target.is_symlink():
            raise NotFound(f"no such file or directory: {target}")
        return self.put_file(target, tags, link)

    def tag(self, digest: str, tags: Mapping[str, str]) -> None:
        """Add or change tags of stored content."""
        self.store.tag(digest, tags)

    def untag(self, digest: str, *keys: str) -> int:
        """Remove the named tags only; returns how many were removed."""
        return self.store.untag(digest, keys)

    # -- lookups (a digest or an alias recorded by ``put(..., expect=)``) ----------------
    def resolve(self, name: str) -> str:
        """The digest a person typed: a whole digest or alias as it is, or a unique prefix
        of at least 6 hex digits (an ambiguous one is an error listing the candidates)."""
        return self.store.resolve(name)

    def info(self, digest: str) -> Content:
        return self.store.info(digest)

    def exists(self, digest: str) -> bool:
        return self.store.exists(digest)

    def aliases(self, digest: str) -> list[str]:
        """The other digests recorded for a content (checked when it was put), sorted."""
        return self.store.aliases_of(digest)

    def find(
        self,
        tags: Mapping[str, str] | None = None,
        kind: str | None = None,
        limit: int = 100,
        after: str | None = None,
        has_tags: Iterable[str] = (),
        tag_prefixes: Mapping[str, str] | None = None,
    ) -> Page:
        """Contents with all of ``tags``, a tag of each name in ``has_tags`` (any value)
        and a value starting with each of ``tag_prefixes``; page with ``after=page.next``."""
        return self.store.find(tags, kind, limit, after, has_tags, tag_prefixes)

    @property
    def on_repair(self) -> Callable[[str], None] | None:
        """Told (one line) whenever a damaged stored copy is set aside and replaced by a
        good one (a re-put, a pull, a repair); also logged as a warning."""
        return self.store.on_repair

    @on_repair.setter
    def on_repair(self, callback: Callable[[str], None] | None) -> None:
        self.store.on_repair = callback

    # -- remotes -----------------------------------------------------------------------
    def add_remote(self, name: str, location: str, endpoint: str | None = None) -> Remote:
        """Register a directory or ``s3://bucket/prefix`` that holds copies."""
        from .remotes import add_remote

        return add_remote(self.store, name, location, endpoint)

    @property
    def remotes(self) -> list[Remote]:
        from .remotes import list_remotes

        return list_remotes(self.store)

    def remote(self, name: str | None = None) -> Remote:
        """The remote ``name``, or the only one if there is one."""
        from .remotes import get_remote

        return get_remote(self.store, self._remote_name(name))

    def remove_remote(self, name: str) -> None:
        """Forget a remote and its inventory (its bytes stay where they are)."""
        from .remotes import remove_remote

        remove_remote(self.store, name)

    def _remote_name(self, name: str | None) -> str:
        if name is not None:
            return name
        names = [r.name for r in self.remotes]
        if len(names) != 1:
            raise InvalidInput(
                "name the remote: " + (", ".join(names) if names else "none is configured")
            )
        return names[0]

    def push(
        self,
        remote: str | None = None,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        verify: bool = False,
    ) -> TransferReport:
        """Copy what the remote lacks (everything, or ``digests`` with trees' files); with
        ``verify``, what its listing lacks though the inventory places it there too."""
        from .remotes import push

        return push(self.store, self._remote_name(remote), digests, progress, verify)

    def pull(
        self,
        remote: str | None = None,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        everything: bool = False,
    ) -> TransferReport:
        """Bring back, verified, what this keep lacks or holds damaged: ``digests``, or all
        its inventory of the remote lists, or with ``everything`` all the remote holds."""
        from .remotes import pull

        return pull(self.store, self._remote_name(remote), digests, progress, everything)

    def verify_remote(
        self, remote: str, rehash: bool = False, progress: ProgressCallback | None = None
    ) -> VerifyReport:
        """Check that ``remote`` holds what the index says (sizes; bytes with ``rehash``)."""
        from .maintenance.verify import VerifyReport
        from .remotes import verify_remote

        checked, nbytes, problems = verify_remote(self.store, remote, rehash, progress)
        return VerifyReport(checked, nbytes, problems)

    # -- roots and maintenance (maintenance/ is imported only when used) ------------------
    def pin(self, digest: str, note: str = "") -> None:
        """Keep ``digest`` (for a tree, with its files) through every gc until unpinned."""
        from .maintenance.roots import pin

        digest = self.store.info(digest).digest
        with self.store.leases.shared():  # a pin makes content live: not while gc sweeps
            pin(self.db, digest, note)

    def unpin(self, digest: str) -> bool:
        """Remove a pin; True if there was one."""
        from .maintenance.roots import unpin

        return unpin(self.db, self.store.canonical(digest))

    def pins(self) -> list[str]:
        """Pinned digests, sorted."""
        from .maintenance.roots import pinned

        return pinned(self.db)

    def fsck(
        self, repair_index: bool = False, progress: ProgressCallback | None = None
    ) -> FsckReport:
        """Check index and blobs both ways, re-hashing; see :mod:`datakeep.maintenance.fsck`."""
        from .maintenance.fsck import fsck
        from .maintenance.reports import save_fsck

        report = fsck(self.store, repair_index, progress)
        if report.forgotten:
            # the stat cache would vouch for these files on the next put: make it re-store
            self.stat_cache.forget(set(report.forgotten))
        save_fsck(self.db, report, repair_index)
        return report

    def gc(
        self,
        grace_s: float = 24 * 3600.0,  # maintenance.DEFAULT_GRACE_S, not imported eagerly
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> GcReport:
        """Remove what no root reaches and is older than ``grace_s``; see
        :mod:`datakeep.maintenance.gc`."""
        from .maintenance.gc import collect_garbage
        from .maintenance.reports import save_gc

        report = collect_garbage(self.store, grace_s, dry_run, progress)
        if not dry_run:
            save_gc(self.db, report)
        return report

    # -- verification --------------------------------------------------------------------
    def verify(self, digest: str, shallow: bool = False) -> Content:
        """Re-hash one content, and every file of a tree unless ``shallow`` (then only
        the manifest); :class:`IntegrityError` naming each bad path, or :class:`NotFound`."""
        from .maintenance.verify import tree_problems

        info = self.store.verify(digest)
        digest = info.digest  # the content's own, if an alias named it
        if info.kind == "tree":
            entries = decode_tree(self.store.get(digest), self.algorithm)
            problems = [] if shallow else tree_problems(self.store, digest, entries)
            if problems:
                bad = "; ".join(f"{p.path}: {p.error}".partition("/")[2] for p in problems[:20])
                raise IntegrityError(f"tree {digest} has {len(problems)} bad file(s): {bad}")
        return info

    def verify_many(
        self,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        shallow: bool = False,
    ) -> VerifyReport:
        """Re-hash ``digests`` (default: everything), each tree among ``digests`` with its
        files unless ``shallow``; report problems instead of raising."""
        from .maintenance.reports import save_verify
        from .maintenance.verify import verify_contents

        report = verify_contents(self.store, digests, progress, shallow)
        if digests is None:  # a check of the whole keep
            save_verify(self.db, report)
        return report

    def last_reports(self) -> dict[str, dict[str, Any]]:
        """The last ``fsck``, ``verify`` of everything and ``gc`` (not a dry run) of this
        keep, by name: when (``at``), the counts and the first problems found."""
        from .maintenance.reports import last_reports

        return last_reports(self.db)

    def repair(self, progress: ProgressCallback | None = None) -> RepairReport:
        """Re-hash everything and fetch each missing or damaged content from the remotes,
        verified (see :mod:`datakeep.remotes.repair`)."""
        from .remotes import repair

        report = repair(self.store, progress)
        # the stat cache must not vouch for a file whose content was unrecoverable
        self.stat_cache.forget({p.digest for p in report.unrecoverable})
        return report
