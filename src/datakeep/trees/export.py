"""The export of a tree: its files written under a new directory, each verified, each
pack read once (a span of its members at a time), then moved into place.

Every export checks every file it hands out, by copy or by hard link: a copy is hashed as
it lands (:func:`~datakeep.copying.copy_verified`), a packed file is hashed from its pack,
and a blob is hashed before it is linked. Nothing is trusted from an earlier export.

A hard-link export could skip the hash of a blob that an earlier export verified while
the blob file's stat (size, inode, mtime, ctime) is unchanged, as git trusts its index.
It does not, because that mark would see only changes made through the filesystem (not a
disk returning other bytes), would be racy within the timestamp granularity, would need
index writes during a read (read-only and shared keeps, where an inode means nothing on
another machine), and is not worth it for speed: the hash of the large files (0.3-0.4 s
of CPU a GB) runs on one core while the small files are written on the other (D1: 10,000
files of 4 KiB beside 1 GB of blobs).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from ..content import (
    CHUNK,
    ContentStore,
    LinkMode,
    creation_umask,
    stored_as_file,
    write_new_file,
)
from ..content.packs import PackMember, pack_member
from ..errors import AlreadyExists, DatakeepError, IntegrityError, NotFound
from ..progress import Progress, ProgressCallback
from .format import TreeEntry, decode_tree
from .scan import check_link_target, check_resolves_inside

__all__ = ["export_entries", "export_tree"]

# Small files in one unit of work: enough that taking a unit costs nothing beside it,
# few enough that the two takers finish close together (D1: about 40 units of 4 KiB
# files, 10 of 100 MiB).
_UNIT_FILES = 256


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
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.datakeep-export-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        export_entries(store, entries, staging, link, progress, fallback)
        if dest.exists():
            dest.rmdir()
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entries


def export_entries(
    store: ContentStore,
    entries: list[TreeEntry],
    staging: Path,
    link: LinkMode = "copy",
    progress: ProgressCallback | None = None,
    fallback: Callable[[str], bytes] | None = None,
) -> None:
    """Write ``entries`` (of a tree) under the empty directory ``staging``, each file
    verified; the caller removes ``staging`` if this fails.

    The work is cut into units (a large file; up to :data:`_UNIT_FILES` small files of one
    pack, or of their own) that this thread and one worker take in turn, large files
    first: a large copy runs in the kernel and in C with the GIL released, and small files
    spend most of their time in system calls, so two takers keep both cores busy until
    the end. The worker starts on the large files while this thread looks up the small
    ones' keys. Progress is reported from this thread only; contents missing or damaged
    here are fetched through ``fallback`` (a mirror) at the end, on this thread too.
    """
    read = store.get if fallback is None else fallback
    base = os.fspath(staging)
    umask = creation_umask(staging)
    reported = 0

    def report(done: Iterable[TreeEntry]) -> None:
        nonlocal reported
        if progress is None:
            return
        for e in done:
            reported += 1
            progress(Progress("export", reported, len(entries), e.size))

    # every directory exists (writable) before the files; their modes come last
    folders = sorted({e.path.rpartition("/")[0] for e in entries} - {""})
    for path in folders + [e.path for e in entries if e.kind == "d"]:
        os.makedirs(staging / path, exist_ok=True)
    report(e for e in entries if e.kind == "d")
    files = [e for e in entries if e.kind == "f"]
    missing_ok = fallback is not None
    failed: list[tuple[TreeEntry, DatakeepError]] = []  # for the fallback, at the end
    finished: deque[list[TreeEntry]] = deque()  # exported by a unit, not yet reported

    def own_files(group: list[tuple[TreeEntry, str | None]]) -> None:
        done = []
        for e, key in group:
            try:
                if key is None:
                    raise NotFound(f"no content {e.digest} in this keep")
                # an inline content has no file of its own to link either
                how = link if stored_as_file(key) else "copy"
                path = staging / e.path
                store.export_file(key, e.digest or "", e.size, path, how, e.mode, False, False)
                done.append(e)
            except (NotFound, IntegrityError) as exc:
                if fallback is None:
                    raise
                failed.append((e, exc))
        finished.append(done)

    def pack_files(pack: str, members: list[tuple[TreeEntry, PackMember]]) -> None:
        # a packed file has no file of its own to link: copied, whatever `link`
        wanted = [(e.digest or "", e.size, m.offset, m.length) for e, m in members]
        done = []
        for (e, _), data in zip(members, store.read_pack_members(pack, wanted), strict=True):
            if isinstance(data, DatakeepError):
                if fallback is None:
                    raise data
                failed.append((e, data))
            else:  # a string path: pathlib costs more than writing a small file
                write_new_file(f"{base}/{e.path}", data, e.mode, umask)
                done.append(e)
        finished.append(done)

    large_units: deque[Callable[[], None]] = deque()
    small_units: deque[Callable[[], None]] = deque()
    stop = threading.Event()  # set by the first unexpected error: the rest is skipped

    def take(*queues: deque[Callable[[], None]], report_finished: bool = False) -> None:
        for queue in queues:
            while not stop.is_set():
                try:
                    unit = queue.popleft()
                except IndexError:  # empty, or another taker had the last one
                    break
                try:
                    unit()
                except BaseException:
                    stop.set()  # a full disk fails the next file too
                    raise
                while report_finished and finished:
                    report(finished.popleft())

    def queue_units(large: bool, units: deque[Callable[[], None]]) -> None:
        """Look up the large (or small) files' keys and queue them as units."""
        group = [e for e in files if (e.size >= CHUNK) == large]
        keys = store.keys_of([e.digest or "" for e in group], missing_ok)
        own: list[tuple[TreeEntry, str | None]] = []
        packed: dict[str, list[tuple[TreeEntry, PackMember]]] = {}
        for e in group:
            key = keys.get(e.digest or "")
            member = None if key is None else pack_member(key)
            if member is None:
                own.append((e, key))
            else:
                packed.setdefault(member.pack, []).append((e, member))
        per_unit = 1 if large else _UNIT_FILES
        for i in range(0, len(own), per_unit):
            units.append(partial(own_files, own[i : i + per_unit]))
        for pack, members in packed.items():
            members.sort(key=lambda member: member[1].offset)  # one read of each span
            for i in range(0, len(members), _UNIT_FILES):
                units.append(partial(pack_files, pack, members[i : i + _UNIT_FILES]))

    worker = ThreadPoolExecutor(1, thread_name_prefix="datakeep-export")
    try:
        queue_units(True, large_units)
        # (should the worker run out of large units before the small ones are queued,
        # this thread takes those alone)
        taken = worker.submit(take, large_units, small_units)
        queue_units(False, small_units)
        for e in entries:
            if e.kind == "l":
                assert e.digest is not None
                link_target = read(e.digest).decode()
                check_link_target(e.path, link_target)
                os.symlink(link_target, staging / e.path)
                report([e])
        take(small_units, large_units, report_finished=True)
        taken.result()
    finally:
        stop.set()  # after a failure here: the worker stops after its current unit
        worker.shutdown(wait=True)
    while finished:
        report(finished.popleft())
    for e, _ in failed:  # only with a fallback: without one, the first failure raised
        assert fallback is not None
        target = staging / e.path
        target.unlink(missing_ok=True)
        target.write_bytes(fallback(e.digest or ""))  # verified by the fallback
        target.chmod(e.mode)
        report([e])
    for e in entries:
        if e.kind == "l":
            check_resolves_inside(staging, staging / e.path)
    for e in reversed(entries):  # deepest first: a read-only directory is filled by now
        if e.kind == "d":
            (staging / e.path).chmod(e.mode)
