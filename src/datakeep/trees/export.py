"""The export of a tree: its files written under a new directory, each verified, packs
read once for all the files they hold, then moved into place.

Every export checks every file it hands out, by copy or by hard link: a copy is hashed as
it lands (:func:`~datakeep.copying.copy_verified`), a packed file is hashed from its pack,
and a blob is hashed before it is linked. Nothing is trusted from an earlier export.

A hard-link export could skip the hash of a blob that an earlier export verified while
the blob file's stat (size, inode, mtime, ctime) is unchanged, as git trusts its index.
It does not, because that mark would see only changes made through the filesystem (not a
disk returning other bytes), would be racy within the timestamp granularity, would need
index writes during a read (read-only and shared keeps, where an inode means nothing on
another machine), and is not needed for speed: the hash of the large files (0.14 s of CPU
a GB, one window at a time) runs on a worker while this thread writes the small files,
which take longer (D1: 10,000 files of 4 KiB beside 1 GB of blobs).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

from ..content import CHUNK, ContentStore, LinkMode, stored_as_file, write_new_file
from ..content.packs import PackMember, pack_member
from ..errors import AlreadyExists, DatakeepError, IntegrityError, NotFound
from ..progress import Progress, ProgressCallback
from .format import TreeEntry, decode_tree
from .scan import check_link_target, check_resolves_inside

__all__ = ["export_entries", "export_tree"]


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

    The large files go first, to a worker that copies (or, for a hard link, hashes) them
    in the kernel and in C with the GIL released, so that its work overlaps everything
    done here: the lookup of the small files' keys, their packs read and checked, and
    their files created. Creating 10,000 small files is most of what ``cp -r`` of D1
    does, and the hash of the large ones (about 0.14 s of CPU a GB) fits beside it on a
    second core.
    """
    read = store.get if fallback is None else fallback
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

    # every directory exists (writable) before the files; their modes come last
    folders = sorted({e.path.rpartition("/")[0] for e in entries} - {""})
    for path in folders + [e.path for e in entries if e.kind == "d"]:
        os.makedirs(staging / path, exist_ok=True)
    files = [e for e in entries if e.kind == "f"]
    missing_ok = fallback is not None

    def export_single(e: TreeEntry, key: str | None) -> None:
        assert e.digest is not None
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

    packed: dict[str, list[tuple[TreeEntry, PackMember]]] = {}  # by pack: each read once
    small: list[tuple[TreeEntry, str | None]] = []  # files of their own (or inline)
    large: list[TreeEntry] = []
    queue: deque[tuple[int, TreeEntry, str | None]] = deque()  # large files not yet taken
    outcomes: dict[int, DatakeepError | None] = {}  # by place in `large`

    def take_large() -> None:
        """Export queued large files until none is left; an unexpected error stops every
        taker (a full disk fails the next file too)."""
        while queue:
            try:
                i, e, key = queue.popleft()
            except IndexError:  # another taker had the last one
                return
            try:
                export_single(e, key)
                outcomes[i] = None
            except (NotFound, IntegrityError) as exc:
                outcomes[i] = exc  # a mirror may have it: left to `from_fallback`
            except BaseException:
                queue.clear()
                raise

    # One worker takes the large files while this thread looks up and writes the small
    # ones, then joins it: a copy keeps a core busy (the kernel's copy and the hash of
    # the copy, on two threads), and a second worker would only take the core that
    # writes the small files.
    worker = ThreadPoolExecutor(1, thread_name_prefix="datakeep-export")
    try:
        taken: Future[None] | None = None
        for group in (
            [e for e in files if e.size >= CHUNK],
            [e for e in files if e.size < CHUNK],
        ):
            keys = store.keys_of([e.digest or "" for e in group], missing_ok)
            for e in group:
                key = keys.get(e.digest or "")
                member = None if key is None else pack_member(key)
                if member is not None:
                    packed.setdefault(member.pack, []).append((e, member))
                elif e.size >= CHUNK:
                    queue.append((len(large), e, key))
                    large.append(e)
                else:
                    small.append((e, key))
            if taken is None and queue:
                taken = worker.submit(take_large)
        for e in entries:
            if e.kind == "l":
                assert e.digest is not None
                link_target = read(e.digest).decode()
                check_link_target(e.path, link_target)
                os.symlink(link_target, staging / e.path)
                exported(e)
        for e, key in small:
            finished(e, partial(export_single, e, key))
        for pack, members in packed.items():
            # a packed file has no file of its own to link: copied, whatever `link`
            wanted = [(e.digest or "", e.size, m.offset, m.length) for e, m in members]
            for (e, _), data in zip(members, store.read_pack_members(pack, wanted), strict=True):
                if isinstance(data, DatakeepError):
                    from_fallback(e, data)
                else:  # a string path: pathlib costs more than writing a small file
                    write_new_file(f"{base}/{e.path}", data, e.mode)
                exported(e)
        take_large()
        if taken is not None:
            taken.result()
    finally:
        queue.clear()  # after a failure here: the worker stops after its current file
        worker.shutdown(wait=True)
    for i, e in enumerate(large):
        error = outcomes[i]
        if error is not None:
            from_fallback(e, error)
        exported(e)
    for e in entries:
        if e.kind == "l":
            check_resolves_inside(staging, staging / e.path)
    for e in reversed(entries):  # deepest first: a read-only directory is filled by now
        if e.kind == "d":
            (staging / e.path).chmod(e.mode)
