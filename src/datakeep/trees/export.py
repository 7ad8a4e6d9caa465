"""The export of a tree: its files written under a new directory, each verified, packs
read once for all the files they hold, then moved into place."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from ..content import CHUNK, ContentStore, LinkMode, Stored, stored_as_file, write_new_file
from ..content.packs import pack_member
from ..errors import AlreadyExists, DatakeepError, IntegrityError, NotFound
from ..progress import Progress, ProgressCallback
from .format import TreeEntry, decode_tree
from .put import LARGE_FILE_WORKERS
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
    verified; the caller removes ``staging`` if this fails."""
    read = store.get if fallback is None else fallback
    keys = store.keys_of(
        [e.digest for e in entries if e.digest is not None], missing_ok=fallback is not None
    )
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
