"""Trees: a directory stored as a canonical manifest that is itself content (Merkle).

Format ``datakeep.tree@v1`` (UTF-8 text; documented in ``docs/tree-format.md``)::

    datakeep.tree@v1
    <kind> <mode, octal> <size> <digest or -> <path>

one line per entry, sorted by path, where kind is ``f`` (regular file), ``l`` (symbolic
link; its content is the link target) or ``d`` (empty directory). Paths are relative,
``/``-separated, with ``\\``, newline and carriage return escaped as ``\\\\``, ``\\n`` and
``\\r``. The same directory always gives the same bytes, hence the same digest.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .content import PACKED_MAX, Content, ContentStore, LinkMode, Written, stored_as_file
from .digest import parse_digest
from .errors import AlreadyExists, IntegrityError, InvalidPath, NotFound
from .packs import PACK_LIMIT
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
    as a tree. Small files are copied into packs, larger ones (or all, when ``link`` asks
    for links) become blobs of their own."""
    files = [s for s in scanned if s.kind == "f"]
    cached = cache.lookup([s.stat for s in files], store.algorithm)
    written: list[Written] = []  # stored, not yet recorded
    to_pack: dict[str, bytes] = {}  # small files read, not yet written
    recorded: set[str] = set()
    fresh: list[tuple[os.stat_result, str]] = []  # hashed, not yet in the stat cache
    digests: dict[str, str] = {}
    total = len(files)

    pending_bytes = 0  # read or written since the last flush
    packing_bytes = 0  # held in to_pack
    base = os.fspath(root)

    def write_packs() -> None:
        nonlocal packing_bytes
        packing_bytes = 0
        written.extend(store.write_packs(to_pack))
        recorded.update(to_pack)  # in the index already, or in `written` until recorded
        to_pack.clear()

    def flush() -> None:
        nonlocal pending_bytes
        pending_bytes = 0
        write_packs()
        store.record(written)
        cache.store(fresh, checked_ns)
        recorded.update(w.digest for w in written)
        written.clear()
        fresh.clear()

    def store_file(item: Scanned) -> str:
        nonlocal pending_bytes, packing_bytes
        path = os.path.join(base, item.path)
        if link == "copy" and item.stat.st_size <= PACKED_MAX:
            digest = store.read_small_file(path, item.stat, to_pack)
            packing_bytes += item.stat.st_size
            if packing_bytes >= PACK_LIMIT:  # a full pack: write it, hold no more in memory
                write_packs()
        else:
            w = store.write_file(path, link=link, expected=item.stat)
            written.append(w)
            digest = w.digest
        fresh.append((item.stat, digest))
        pending_bytes += item.stat.st_size
        if len(fresh) >= _BATCH_FILES or pending_bytes >= _BATCH_BYTES:
            flush()
        return digest

    for done, (item, digest) in enumerate(zip(files, cached, strict=True), start=1):
        if digest is None:
            digest = store_file(item)
        digests[item.path] = digest
        if progress is not None:
            progress(Progress("store", done, total, item.stat.st_size))
    for item in scanned:
        if item.kind == "l":
            assert item.target is not None
            digests[item.path] = store.buffer(item.target.encode(), to_pack)

    entries = [TreeEntry(s.path, s.kind, s.mode, s.size, digests.get(s.path)) for s in scanned]
    manifest = encode_tree(entries)
    tree = store.write_bytes(manifest)
    if not store.exists(tree.digest):
        # A new tree: make sure every file the cache vouched for is really in this keep.
        vouched = set(digests.values()) - recorded - {w.digest for w in written} - set(to_pack)
        lost = store.missing(vouched)
        if lost:
            for item in files:
                if digests[item.path] in lost:
                    store_file(item)
    flush()
    return tree


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
    made: set[str] = {""}
    total = len(entries)
    try:
        for done, e in enumerate(entries, start=1):
            parent = e.path.rpartition("/")[0]
            if parent not in made:
                os.makedirs(staging / parent, exist_ok=True)
                made.add(parent)
            target = staging / e.path
            if e.kind == "d":
                target.mkdir(exist_ok=True)
                target.chmod(e.mode)
            elif e.kind == "l":
                assert e.digest is not None
                link_target = read(e.digest).decode()
                check_link_target(e.path, link_target)
                os.symlink(link_target, target)
            else:
                assert e.digest is not None
                try:
                    if e.digest not in keys:
                        raise NotFound(f"no content {e.digest} in this keep")
                    key = keys[e.digest]
                    # a packed or inline content has no file of its own to link: copied
                    how = link if stored_as_file(key) else "copy"
                    store.export_file(key, e.digest, e.size, target, how, e.mode, atomic=False)
                except (NotFound, IntegrityError):
                    if fallback is None:
                        raise
                    target.write_bytes(fallback(e.digest))  # verified by the fallback
                    target.chmod(e.mode)
            if progress is not None:
                progress(Progress("export", done, total, e.size))
        for e in entries:
            if e.kind == "l":
                check_resolves_inside(staging, staging / e.path)
        if dest.exists():
            dest.rmdir()
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entries
