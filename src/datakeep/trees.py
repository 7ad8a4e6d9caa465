"""Trees: a directory stored as a canonical manifest that is itself content (Merkle).

Format ``datakeep.tree@v1`` (UTF-8 text; documented in ``docs/tree-format.md``)::

    datakeep.tree@v1
    <kind> <mode, octal> <size> <digest or -> <path>

one line per entry, sorted by path, where kind is ``f`` (regular file), ``l`` (symbolic
link; its content is the link target) or ``d`` (empty directory). Paths are relative,
``/``-separated, with ``\\``, newline and carriage return escaped as ``\\\\``, ``\\n`` and
``\\r``. The same directory always gives the same bytes, hence the same digest.

How the files are kept is not part of the manifest: a put stores a tree's small files in
packs (:mod:`datakeep.packs`) and the others as blobs of their own, and an export reads
each pack once for all the files it holds.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .content import (
    CHUNK,
    PACKED_MAX,
    Content,
    ContentStore,
    LinkMode,
    Stored,
    Written,
    stored_as_file,
    write_new_file,
)
from .digest import parse_digest
from .errors import AlreadyExists, DatakeepError, IntegrityError, InvalidPath, NotFound
from .packs import PACK_LIMIT, pack_member
from .progress import Progress, ProgressCallback
from .scan import (
    DirectoryScan,
    Scanned,
    check_link_target,
    check_resolves_inside,
    scan_directory,
)
from .statcache import StatCache

__all__ = [
    "TREE_FORMAT",
    "TreeEntry",
    "decode_tree",
    "encode_tree",
    "export_tree",
    "put_tree",
    "tree_members",
]

TREE_FORMAT = "datakeep.tree@v1"
_HEADER = TREE_FORMAT + "\n"
# Record progress in batches, so an interrupted put of a big tree resumes from there.
_BATCH_FILES = 2000
_BATCH_BYTES = 256 << 20
# Threads that store or export the large files while the small ones are handled on the
# calling thread. Two, though the machine may have two cores only: where new pages cost
# the most (memory the host has to hand back), two kernel copies side by side take 35%
# less time than one after the other (ten 100 MiB files: 1.5-2.2 s against 2.2-3.5 s).
LARGE_FILE_WORKERS = 2


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a tree manifest."""

    path: str
    """Relative ``/``-separated path inside the tree."""
    kind: str
    """``f`` file, ``l`` symbolic link, ``d`` empty directory."""
    mode: int
    """Permission bits (``st_mode & 0o777``)."""
    size: int
    """Bytes of the file or of the link target; 0 for a directory."""
    digest: str | None
    """Content digest; None for a directory."""


def _escape(path: str) -> str:
    if "\\" in path or "\n" in path or "\r" in path:
        return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return path


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(text[i + 1], "\ufffd"))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def encode_tree(entries: Iterable[TreeEntry]) -> bytes:
    lines = [_HEADER]
    for e in sorted(entries, key=lambda e: e.path):
        lines.append(f"{e.kind} {e.mode:o} {e.size} {e.digest or '-'} {_escape(e.path)}\n")
    return "".join(lines).encode()


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a clean relative path inside a tree, else raise."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in path
    ):
        raise InvalidPath(f"unsafe path in tree: {path!r}")
    return path


def decode_tree(data: bytes, algorithm: str | None = None) -> list[TreeEntry]:
    """Parse and validate a manifest; anything malformed raises :class:`IntegrityError`."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise IntegrityError("tree manifest is not UTF-8") from None
    if not text.startswith(_HEADER):
        raise IntegrityError(f"not a {TREE_FORMAT} manifest")
    entries: list[TreeEntry] = []
    previous = ""
    blocked: set[str] = set()  # files and links: nothing may live beneath them
    for number, line in enumerate(text[len(_HEADER) :].split("\n")[:-1], start=2):
        try:
            kind, mode_text, size_text, digest_text, raw_path = line.split(" ", 4)
            path = check_relative_path(_unescape(raw_path))
            mode, size = int(mode_text, 8), int(size_text)
            if kind not in ("f", "l", "d") or mode < 0 or mode > 0o777 or size < 0:
                raise ValueError(line)
            digest = None if kind == "d" else str(parse_digest(digest_text))
            if kind == "d" and digest_text != "-":
                raise ValueError(line)
            if algorithm is not None and digest is not None and not digest.startswith(algorithm):
                raise ValueError(line)
        except (ValueError, InvalidPath) as exc:
            raise IntegrityError(f"tree manifest line {number} is malformed: {exc}") from None
        if path <= previous:
            raise IntegrityError(f"tree manifest line {number}: paths not strictly sorted")
        parent = path
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if parent in blocked:
                raise IntegrityError(f"tree manifest: {path!r} lies under a file or link")
        if kind != "d":
            blocked.add(path)
        previous = path
        entries.append(TreeEntry(path, kind, mode, size, digest))
    if not text.endswith("\n") and len(text) > len(_HEADER):
        raise IntegrityError("tree manifest is truncated")
    return entries


def tree_members(data: bytes, algorithm: str) -> list[str]:
    """The digests a manifest names, without checking its paths: for gc, which reads
    many large trees whose bytes were verified on read and fully validated when stored.
    Anything that does not look like a manifest still raises :class:`IntegrityError`."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise IntegrityError("tree manifest is not UTF-8") from None
    if not text.startswith(_HEADER) or not text.endswith("\n"):
        raise IntegrityError(f"not a {TREE_FORMAT} manifest")
    prefix = algorithm + ":"
    members = []
    for line in text[len(_HEADER) : -1].split("\n") if len(text) > len(_HEADER) else []:
        fields = line.split(" ", 4)
        if len(fields) != 5 or not (fields[3] == "-" or fields[3].startswith(prefix)):
            raise IntegrityError(f"tree manifest line is malformed: {line!r}")
        if fields[3] != "-":
            members.append(fields[3])
    return members


def put_tree(
    store: ContentStore,
    cache: StatCache,
    root: Path,
    tags: dict[str, str] | None = None,
    link: LinkMode = "copy",
    progress: ProgressCallback | None = None,
    scanned: DirectoryScan | None = None,
) -> Content:
    """Store the directory ``root``; unchanged files (per the stat cache) are not re-read,
    and an unchanged directory (every entry's stat as when its tree was stored) is not
    even looked up file by file. ``scanned`` is a reading of ``root`` made just before
    (:mod:`datakeep.unchanged`), used instead of reading it again."""
    if not root.exists():
        raise NotFound(f"no such directory: {root}")
    if not root.is_dir():
        raise InvalidPath(f"{root} is not a directory")
    where = os.path.realpath(root)
    if scanned is None or (scanned.root, scanned.algorithm) != (where, store.algorithm):
        scanned = scan_directory(root, store.algorithm)
    tree = _known_tree(store, cache.tree_of(where, scanned.fingerprint))
    if tree is None:
        entries, checked_ns = scanned.entries, scanned.checked_ns
        tree = _store_tree(store, cache, root, entries, link, progress, checked_ns)
        newest_ns = max((max(s.stat.st_mtime_ns, s.stat.st_ctime_ns) for s in entries), default=0)
        stamp = scanned.fingerprint
        cache.remember_tree(where, stamp, tree.digest, tree.size, newest_ns, checked_ns)
    store.record([tree], tags, kind="tree")
    return store.info(tree.digest)


def _known_tree(store: ContentStore, known: tuple[str, int] | None) -> Written | None:
    """The tree the stat cache remembers, if this keep still holds it."""
    if known is None:
        return None
    digest, size = known
    try:
        return Written(digest, size, store.key_of(digest))
    except NotFound:
        return None


def _store_tree(
    store: ContentStore,
    cache: StatCache,
    root: Path,
    scanned: list[Scanned],
    link: LinkMode,
    progress: ProgressCallback | None,
    checked_ns: int,
) -> Written:
    """Store the scanned files and the manifest; returns the manifest, not yet recorded
    as a tree."""
    files = [s for s in scanned if s.kind == "f"]
    cached = cache.lookup([s.stat for s in files], store.algorithm)
    writer = _TreeWriter(store, cache, os.fspath(root), link, progress, checked_ns, len(files))
    try:
        todo = []
        for item, digest in zip(files, cached, strict=True):
            if digest is None:
                todo.append(item)
            else:
                writer.known(item, digest)
        # files of their own first: the workers then store them while small ones are packed
        for item in sorted(todo, key=writer.packs):
            writer.store(item)
        for item in scanned:
            if item.kind == "l":
                writer.store_link(item)
        writer.wait()
        digests = writer.digests
        entries = [TreeEntry(s.path, s.kind, s.mode, s.size, digests.get(s.path)) for s in scanned]
        tree = store.write_bytes(encode_tree(entries))
        if not store.exists(tree.digest):
            # A new tree: make sure every file the cache vouched for is really in this keep.
            lost = store.missing(set(digests.values()) - writer.stored)
            for item in files:
                if digests[item.path] in lost:
                    writer.store(item)
            writer.wait()
        writer.flush()
    finally:
        writer.close()
    return tree


class _TreeWriter:
    """Stores the files of one tree and records them in batches.

    Small files are read and hashed on the calling thread and written in packs; the others
    are stored by worker threads meanwhile. The two overlap on two cores: the first is
    mostly Python and small system calls, the second copying in the kernel and hashing in
    C with the GIL released.
    """

    def __init__(
        self,
        store: ContentStore,
        cache: StatCache,
        base: str,
        link: LinkMode,
        progress: ProgressCallback | None,
        checked_ns: int,
        total: int,
    ) -> None:
        self._store, self._cache, self._base, self._link = store, cache, base, link
        self._progress, self._checked_ns, self._total = progress, checked_ns, total
        self.digests: dict[str, str] = {}  # path -> digest, as they become known
        self.stored: set[str] = set()  # digests this put stored (or found stored)
        self._written: list[Written] = []  # stored, not yet recorded
        self._to_pack: dict[str, bytes] = {}  # read, not yet written
        self._packing_bytes = 0
        self._fresh: list[tuple[os.stat_result, str]] = []  # hashed, not in the stat cache
        self._pending_bytes = 0  # stored since the last flush
        self._pool = ThreadPoolExecutor(LARGE_FILE_WORKERS, thread_name_prefix="datakeep-put")
        self._running: deque[tuple[Scanned, Future[Written]]] = deque()

    def packs(self, item: Scanned) -> bool:
        """Whether ``item`` goes into a pack (else it becomes a blob of its own)."""
        return self._link == "copy" and item.stat.st_size <= PACKED_MAX

    def known(self, item: Scanned, digest: str) -> None:
        """A file the stat cache vouches for."""
        self.digests[item.path] = digest
        self._report(item)

    def store(self, item: Scanned) -> None:
        path = os.path.join(self._base, item.path)
        if self.packs(item):
            digest = self._store.read_small_file(path, item.stat, self._to_pack)
            self._packing_bytes += item.stat.st_size
            if self._packing_bytes >= PACK_LIMIT:  # a full pack: no more held in memory
                self._write_packs()
            self._hashed(item, digest)
        else:
            write = self._store.write_file
            future = self._pool.submit(write, path, link=self._link, expected=item.stat)
            self._running.append((item, future))
        self._collect_finished()
        self._flush_if_due()

    def store_link(self, item: Scanned) -> None:
        assert item.target is not None
        digest = self._store.hash_into(item.target.encode(), self._to_pack)
        self.digests[item.path] = digest
        self.stored.add(digest)

    def wait(self) -> None:
        """Until every file handed to the workers is stored (its digest known), recording
        in batches meanwhile, so a put that is interrupted resumes after the last batch."""
        while self._running:
            item, future = self._running.popleft()
            self._hashed_by_worker(item, future.result())
            self._flush_if_due()

    def flush(self) -> None:
        """Record what is stored so far (what the workers still store comes later)."""
        self._collect_finished()
        self._pending_bytes = 0
        self._write_packs()
        self._store.record(self._written)
        self._cache.store(self._fresh, self._checked_ns)
        self._written.clear()
        self._fresh.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect_finished(self) -> None:
        # recorded in the order handed out: the first still running blocks the rest
        while self._running and self._running[0][1].done():
            item, future = self._running.popleft()
            self._hashed_by_worker(item, future.result())

    def _hashed_by_worker(self, item: Scanned, written: Written) -> None:
        self._written.append(written)
        self._hashed(item, written.digest)

    def _flush_if_due(self) -> None:
        if len(self._fresh) >= _BATCH_FILES or self._pending_bytes >= _BATCH_BYTES:
            self.flush()

    def _write_packs(self) -> None:
        self._packing_bytes = 0
        self._written.extend(self._store.write_packs(self._to_pack))
        self._to_pack.clear()

    def _hashed(self, item: Scanned, digest: str) -> None:
        self.digests[item.path] = digest
        self.stored.add(digest)
        self._fresh.append((item.stat, digest))
        self._pending_bytes += item.stat.st_size
        self._report(item)

    def _report(self, item: Scanned) -> None:
        if self._progress is not None:
            done = len(self.digests)
            self._progress(Progress("store", done, self._total, item.stat.st_size))


def export_tree(
    store: ContentStore,
    digest: str,
    dest: Path,
    link: LinkMode = "copy",
    progress: ProgressCallback | None = None,
    fallback: Callable[[str], bytes] | None = None,
) -> list[TreeEntry]:
    """Recreate the tree at ``dest``, every file verified; all or nothing.

    The tree is built in a hidden sibling directory and renamed into place at the end, so
    a failure (a corrupted blob, a full disk) leaves ``dest`` as it was. ``fallback``
    gives the verified bytes of a content whose stored copy is missing or bad (from a
    mirror); without it, that failure stands.
    """
    read = store.get if fallback is None else fallback
    entries = decode_tree(read(digest), store.algorithm)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AlreadyExists(f"{dest} exists and is not an empty directory")
    keys = store.keys_of(
        [e.digest for e in entries if e.digest is not None], missing_ok=fallback is not None
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.datakeep-export-{secrets.token_hex(6)}"
    staging.mkdir()
    base = os.fspath(staging)
    done = 0

    def exported(e: TreeEntry) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(Progress("export", done, len(entries), e.size))

    def from_fallback(e: TreeEntry, error: DatakeepError) -> None:
        if fallback is None:
            raise error
        target = staging / e.path
        target.unlink(missing_ok=True)
        target.write_bytes(fallback(e.digest or ""))  # verified by the fallback
        target.chmod(e.mode)

    try:
        # every directory exists (writable) before the files; their modes come last
        folders = sorted({e.path.rpartition("/")[0] for e in entries} - {""})
        for path in folders + [e.path for e in entries if e.kind == "d"]:
            os.makedirs(staging / path, exist_ok=True)
        # packed files by pack: each pack is read once, and one at a time
        packed: dict[str, list[tuple[TreeEntry, str]]] = {}
        singles: list[TreeEntry] = []  # files of their own (or inline)
        for e in entries:
            if e.kind == "f":
                assert e.digest is not None
                key = keys.get(e.digest, "")
                member = pack_member(key)
                if member is None:
                    singles.append(e)
                else:
                    packed.setdefault(member.pack, []).append((e, key))
            elif e.kind == "l":
                assert e.digest is not None
                link_target = read(e.digest).decode()
                check_link_target(e.path, link_target)
                os.symlink(link_target, staging / e.path)
                exported(e)

        def export_single(e: TreeEntry) -> None:
            assert e.digest is not None
            key = keys.get(e.digest)
            if key is None:
                raise NotFound(f"no content {e.digest} in this keep")
            # an inline content has no file of its own to link either
            how = link if stored_as_file(key) else "copy"
            store.export_file(key, e.digest, e.size, staging / e.path, how, e.mode, False)

        def finished(e: TreeEntry, outcome: Callable[[], object]) -> None:
            try:
                outcome()
            except (NotFound, IntegrityError) as exc:
                from_fallback(e, exc)
            exported(e)

        # large files are copied and verified by workers (in the kernel and in C, the GIL
        # released) while the small ones are written here
        pool = ThreadPoolExecutor(LARGE_FILE_WORKERS, thread_name_prefix="datakeep-export")
        try:
            large = [(e, pool.submit(export_single, e)) for e in singles if e.size >= CHUNK]
            for e in singles:
                if e.size < CHUNK:
                    finished(e, partial(export_single, e))
            for members in packed.values():
                # a packed file has no file of its own to link: copied, whatever `link`
                stored = [Stored(e.digest or "", e.size, "blob", key) for e, key in members]
                for (e, _key), (_item, data) in zip(members, store.read_many(stored), strict=True):
                    if isinstance(data, DatakeepError):
                        from_fallback(e, data)
                    else:  # a string path: pathlib costs more than writing a small file
                        write_new_file(os.path.join(base, e.path), data, e.mode)
                    exported(e)
            for e, future in large:
                finished(e, future.result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for e in entries:
            if e.kind == "l":
                check_resolves_inside(staging, staging / e.path)
        for e in reversed(entries):  # deepest first: a read-only directory is filled by now
            if e.kind == "d":
                (staging / e.path).chmod(e.mode)
        if dest.exists():
            dest.rmdir()
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entries
