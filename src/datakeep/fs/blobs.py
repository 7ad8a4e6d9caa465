"""Verified bytes and byte ranges of stored blobs, for readers that seek.

Nothing leaves here unchecked:

- a whole blob is read with :meth:`~datakeep.keep.Keep.get`, re-hashed against its digest
  (from a mirror if the primary copy fails);
- a range of a small blob (up to :data:`SMALL`: packed and inline contents among them) is
  cut from the whole blob, read and verified once and kept in a bounded memory cache;
- a range of a large blob is served from verified chunks. The first range asked for
  reads the whole blob once, hashing it against its digest and, in the same pass, every
  :data:`CHUNK`-byte chunk with BLAKE3; the list of chunk hashes is kept only if the whole
  blob matched. Every later range reads just the chunks it covers (``pread`` locally, a
  ranged GET on S3) and checks each against that list, so a byte changed on disk after
  the first pass raises :class:`IntegrityError` too. The list costs 32 bytes per 64 KiB
  (512 KiB for a 1 GiB blob).

Both caches are shared by every filesystem of the process, keyed by keep and digest, and
bounded (least recently used first out).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from blake3 import blake3

from ..content import CHUNK as READ_CHUNK
from ..content import stored_as_file
from ..digest import new_hasher
from ..errors import IntegrityError, NotFound
from ..keep import Keep

__all__ = ["CHUNK", "SMALL", "VerifiedBlobs"]

SMALL = 4 << 20
"""Blobs up to this size are read whole (and cached) to serve a range."""
CHUNK = 64 << 10
"""The span each remembered hash covers: a 4 KiB read costs at most two chunks."""
_HASH = 32
_PARALLEL = 16 * CHUNK  # spans this long are hashed on two threads (blake3 frees the GIL)
_SPLIT = 1 << 20  # longer spans are read without their edges, which are read apart
_pool = ThreadPoolExecutor(1, thread_name_prefix="datakeep-fs-hash")


@dataclass(frozen=True, slots=True)
class _Chunks:
    """A large blob verified whole once: where it is, and the hash of each chunk."""

    key: str
    hashes: bytes


class _Lru:
    """A dictionary that forgets its least recently used items beyond ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, bytes | _Chunks] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @staticmethod
    def _cost(value: bytes | _Chunks) -> int:
        return len(value.hashes) if isinstance(value, _Chunks) else len(value)

    def get(self, key: Hashable) -> bytes | _Chunks | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: bytes | _Chunks) -> None:
        cost = self._cost(value)
        if cost > self.limit:
            return
        with self._lock:
            self._drop(key)
            self._items[key] = value
            self._held += cost
            while self._held > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._held -= self._cost(dropped)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._held -= self._cost(old)


_SMALL_BLOBS = _Lru(64 << 20)
_CHUNK_LISTS = _Lru(32 << 20)  # each byte stands for 2 KiB of verified data


class VerifiedBlobs:
    """Verified reads of one keep's blobs, whole or by range; safe across threads."""

    def __init__(self, keep: Keep) -> None:
        self.keep = keep
        self._where = str(keep.path)

    def read(self, digest: str, size: int, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the blob ``digest`` of ``size`` bytes, verified."""
        end = size if end is None else min(end, size)
        start = max(0, start)
        if start >= end:
            return b""
        if size <= SMALL:
            whole = self._whole_small(digest)
            return whole if (start, end) == (0, size) else whole[start:end]
        if (start, end) == (0, size):
            return self.keep.get(digest)
        return self._range(digest, size, start, end)

    def forget(self, digest: str) -> None:
        """Drop what is remembered of ``digest`` here: its next read verifies it again."""
        _SMALL_BLOBS.drop((self._where, digest))
        _CHUNK_LISTS.drop((self._where, digest))

    def _whole_small(self, digest: str) -> bytes:
        data = _SMALL_BLOBS.get((self._where, digest))
        if not isinstance(data, bytes):
            data = self.keep.get(digest)
            _SMALL_BLOBS.put((self._where, digest), data)
        return data

    def _range(self, digest: str, size: int, start: int, end: int) -> bytes:
        chunks = _CHUNK_LISTS.get((self._where, digest))
        if not isinstance(chunks, _Chunks):
            chunks = self._verify_whole(digest, size)
            _CHUNK_LISTS.put((self._where, digest), chunks)
        first, last = start // CHUNK, (end - 1) // CHUNK
        low, high = first * CHUNK, min(size, (last + 1) * CHUNK)
        try:
            if high - low <= _SPLIT:
                raw = self._read(chunks.key, low, high)
                data, hashes = raw[start - low : end - low], _chunk_hashes(memoryview(raw))
            else:  # the bytes asked for, as read (no copy of them), and the edges apart
                data = self._read(chunks.key, start, end)
                head = self._read(chunks.key, low, start)
                tail = self._read(chunks.key, end, high)
                hashes = _edged_hashes(head, memoryview(data), tail, end - last * CHUNK)
        except NotFound:
            _CHUNK_LISTS.drop((self._where, digest))  # gone, or moved: look it up again
            raise
        if hashes != chunks.hashes[first * _HASH : (last + 1) * _HASH]:
            bad = next(
                n
                for n in range(first, last + 1)
                if hashes[(n - first) * _HASH : (n - first + 1) * _HASH]
                != chunks.hashes[n * _HASH : (n + 1) * _HASH]
            )
            raise IntegrityError(
                f"{digest} is corrupted: bytes {bad * CHUNK}-{min(size, (bad + 1) * CHUNK)} "
                "changed since the blob was verified"
            )
        return data

    def _read(self, key: str, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        raw = self.keep.store.backend.read(key, start, end)
        if len(raw) != end - start:
            raise IntegrityError(
                f"blob {key} is truncated: {len(raw)} bytes at {start}, not {end - start}"
            )
        return raw

    def _verify_whole(self, digest: str, size: int) -> _Chunks:
        """Read the blob once, checking it against its digest while hashing each chunk;
        the chunk hashes count only if the whole blob matched."""
        store = self.keep.store
        key = store.key_of(digest)
        if store.files is not None and stored_as_file(key):
            return _Chunks(key, _verify_file(store.files.path_of(key), digest, size))
        hashes = bytearray()
        with store.open(digest) as reader:  # raises before the end if the blob is not it
            buffer = bytearray(READ_CHUNK)  # a multiple of CHUNK: reads split into chunks
            view = memoryview(buffer)
            pending = b""
            while n := reader.readinto(buffer):
                data = memoryview(pending + bytes(view[:n])) if pending else view[:n]
                whole = len(data) - len(data) % CHUNK
                hashes += _chunk_hashes(data[:whole])
                pending = bytes(data[whole:])
            hashes += _chunk_hashes(memoryview(pending))
        if len(hashes) != -(-size // CHUNK) * _HASH:
            raise IntegrityError(f"{digest} did not read back as {size} bytes")
        return _Chunks(key, bytes(hashes))


def _verify_file(path: os.PathLike[str], digest: str, size: int) -> bytes:
    """The chunk hashes of the blob file ``path``, mapped once and hashed on two threads
    (its digest on one, its chunks on the other), if it is the content ``digest``."""
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed below, after the mapping)
    except FileNotFoundError:
        raise NotFound(f"blob of {digest} is missing from the store") from None
    with f:
        stored = os.fstat(f.fileno()).st_size
        if stored != size:
            raise IntegrityError(f"{digest} has {stored} bytes stored, not {size}")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            algorithm, _, expected = digest.partition(":")
            whole = _pool.submit(_hex_digest, algorithm, view)
            try:
                hashes = b"".join(
                    blake3(view[at : at + CHUNK]).digest() for at in range(0, size, CHUNK)
                )
            finally:
                actual = whole.result()  # the mapping stays until both hashes are done
                view.release()
    if actual != expected:
        raise IntegrityError(
            f"{digest} is corrupted: its stored bytes hash to {algorithm}:{actual}"
        )
    return hashes


def _hex_digest(algorithm: str, data: memoryview) -> str:
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return hasher.hexdigest()


def _edged_hashes(head: bytes, data: memoryview, tail: bytes, in_last: int) -> bytes:
    """The chunk hashes of ``head + data + tail``, which starts on a chunk boundary, with
    ``head`` and ``tail`` the parts of its first and last chunks outside ``data`` (which
    spans more than two chunks) and ``in_last`` the bytes of ``data`` in the last chunk;
    only the two chunks at the edges are put together."""
    lead = CHUNK - len(head) if head else 0
    trail = in_last if tail else 0
    hashes = blake3(head + bytes(data[:lead])).digest() if head else b""
    hashes += _chunk_hashes(data[lead : len(data) - trail])
    if tail:
        hashes += blake3(bytes(data[len(data) - trail :]) + tail).digest()
    return hashes


def _chunk_hashes(data: memoryview) -> bytes:
    """The BLAKE3 of each CHUNK of ``data``, end to end; a long span on two threads."""

    def hashed(lo: int, hi: int) -> bytes:
        return b"".join(
            blake3(data[at : min(at + CHUNK, hi)]).digest() for at in range(lo, hi, CHUNK)
        )

    if len(data) < _PARALLEL:
        return hashed(0, len(data))
    middle = len(data) // CHUNK // 2 * CHUNK
    other: Future[bytes] = _pool.submit(hashed, middle, len(data))
    return hashed(0, middle) + other.result()
