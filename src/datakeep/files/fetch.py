"""Fetching a stored file: a read-only copy, every hash re-checked in the one pass that
writes it. A copy left by an earlier fetch is checked again first, so editing a fetched file
can never make a later fetch hand out wrong bytes."""

from __future__ import annotations

import itertools
import mmap
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..content import ContentStore, stored_as_file
from ..copying import copy_range
from ..digest import new_hasher
from .errors import HashError
from .hashing import THREADED_FROM, FileHashes, SideHashes
from .manifest import FileEntry

__all__ = ["fetch_verified"]

_STEP = 8 << 20
_BUFFERS = 4  # one more than the chunks the hash threads may hold (hashing.py)


def fetch_verified(store: ContentStore, entry: FileEntry, expected: str | None, dest: Path) -> Path:
    """``dest``, a read-only copy of ``entry`` whose bytes match every recorded hash and
    ``expected`` (MD5 hex, or a digest), written from the keep unless a good one is there."""
    if expected is not None:
        _check_given(entry, expected)
    if dest.is_symlink() or dest.exists():
        if not dest.is_symlink() and dest.is_file() and _still_good(dest, entry, store.algorithm):
            return dest
        if not dest.is_symlink():
            dest.chmod(0o644)
        dest.unlink()  # changed since it was fetched: replaced by a good copy
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.datakeep-tmp")
    try:
        key = store.key_of(entry.digest)
        if store.files is not None and stored_as_file(key) and entry.size:
            with open(store.files.path_of(key), "rb") as raw, open(temp, "xb") as out:
                hashes = _copy_mapped(raw.fileno(), out.fileno(), entry.size, store.algorithm)
        else:
            with store.open_blob(key, entry.digest) as raw, open(temp, "xb", buffering=0) as out:
                hashes = _hash(raw, store.algorithm, entry.size, out.write)
        _check(
            hashes,
            entry,
            "its stored copy is damaged ('datakeep pull' or 'repair' fetch a good one)",
        )
        os.chmod(temp, 0o444)
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return dest


def _still_good(path: Path, entry: FileEntry, algorithm: str) -> bool:
    try:
        with open(path, "rb", buffering=0) as f:
            hashes = _hash(f, algorithm, entry.size, None)
    except OSError:
        return False
    return _mismatch(hashes, entry) is None


def _hash(
    raw: BinaryIO, algorithm: str, size: int, write: Callable[[memoryview], object] | None
) -> FileHashes:
    """Read ``raw`` to its end in steps, hashing each three ways (MD5 and SHA-256 on their
    own threads) and passing it to ``write``. Buffers are reused once the threads are done
    with them."""
    buffers = [bytearray(min(_STEP, max(size, 1) + 1)) for _ in range(_BUFFERS)]
    hasher = new_hasher(algorithm)
    total = 0
    with SideHashes(threaded=size >= THREADED_FROM) as side:
        for step in itertools.count():
            buffer = buffers[step % _BUFFERS]
            n = raw.readinto(buffer)  # type: ignore[attr-defined]
            if not n:
                break
            view = memoryview(buffer)[:n]
            side.feed(view)
            hasher.update(view)
            if write is not None:
                _write_all(write, view)
            total += n
        md5, sha256 = side.result()
    return FileHashes(md5, sha256, f"{algorithm}:{hasher.hexdigest()}", total)


def _copy_mapped(src: int, dst: int, size: int, algorithm: str) -> FileHashes:
    """Copy a stored blob of ``size`` bytes (read-only, so it can be mapped safely) to
    ``dst`` in the kernel, hashing the mapped source three ways: no byte passes through
    a Python buffer, which leaves the two cores to the hashes."""
    hasher = new_hasher(algorithm)
    copied = 0
    with mmap.mmap(src, 0, access=mmap.ACCESS_READ) as mapped:
        whole = memoryview(mapped)
        steps = [whole[offset : offset + _STEP] for offset in range(0, len(whole), _STEP)]
        try:
            with SideHashes(threaded=size >= THREADED_FROM) as side:
                for number, step in enumerate(steps):
                    side.feed(step)
                    hasher.update(step)
                    copied += copy_range(src, dst, number * _STEP, len(step))
                md5, sha256 = side.result()
        finally:
            # every view of the mapping is let go before it closes (the hash threads are
            # done with them once result() returned or the threads were shut down)
            for step in steps:
                step.release()
            whole.release()
    return FileHashes(md5, sha256, f"{algorithm}:{hasher.hexdigest()}", copied)


def _write_all(write: Callable[[memoryview], object], view: memoryview) -> None:
    while view:
        written = write(view)
        view = view[written if isinstance(written, int) else len(view) :]


def _mismatch(hashes: FileHashes, entry: FileEntry) -> str | None:
    """What differs from the recorded hashes, or None."""
    if hashes.size != entry.size:
        return f"{hashes.size} bytes, not {entry.size}"
    for what, actual, recorded in (
        ("digest", hashes.digest, entry.digest),
        ("MD5", hashes.md5, entry.md5),
        ("SHA-256", hashes.sha256, entry.sha256),
    ):
        if actual != recorded:
            return f"{what} {actual}, not the recorded {recorded}"
    return None


def _check(hashes: FileHashes, entry: FileEntry, cause: str) -> None:
    wrong = _mismatch(hashes, entry)
    if wrong is not None:
        raise HashError(f"{'/'.join(entry.namespace)}/{entry.name}: {wrong}; {cause}")


def _check_given(entry: FileEntry, expected: str) -> None:
    """:class:`HashError` unless ``expected`` is one of the file's recorded hashes: an MD5
    or SHA-256 in hex, or a digest ``algorithm:hex``."""
    given = expected.strip().lower()
    bare = entry.digest.partition(":")[2]
    known = {
        entry.md5,
        entry.sha256,
        entry.digest,
        bare,
        f"md5:{entry.md5}",
        f"sha256:{entry.sha256}",
    }
    if given not in known:
        raise HashError(
            f"{'/'.join(entry.namespace)}/{entry.name}: the given hash {expected} is not its "
            f"MD5 {entry.md5}, SHA-256 {entry.sha256} or digest {entry.digest}"
        )
