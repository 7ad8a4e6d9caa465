"""The write path: bytes, streams and files become blobs in the backend, named by the
digest computed while they stream through once. Nothing here touches the index; the
caller records what was written (:meth:`ContentStore.record`). A caller's expected digest
(:mod:`.expect`) is hashed in the same pass and checked before a blob is published."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Literal

from ..backends import Backend, FileBackend
from ..digest import Hasher, new_hasher
from ..errors import InvalidInput, LinkUnsupported
from .expect import Expected
from .model import CHUNK, SMALL_FILE, LinkMode, Router, Written
from .packs import build_pack, member_key, pack_digest
from .sources import check_unchanged, chunks, read_whole, source_file

__all__ = ["BlobWriting"]


class BlobWriting:
    """Writing blobs, not yet recorded; part of :class:`~datakeep.content.ContentStore`."""

    backend: Backend
    files: FileBackend | None
    """The backend again when it keeps blobs as local files (links, kernel copies)."""
    algorithm: str
    router: Router
    _reflink_ok: bool
    set_aside_if_bad: Callable[[str, int, str], bool]
    """Given the digest, size and key of a blob to publish whose key is taken: set the
    copy there aside if it fails its digest and say so (True), else False. A damaged
    copy then never blocks a good one: create-only publishing is retried once."""

    def _digest_of(self, hasher: Hasher) -> str:
        return f"{self.algorithm}:{hasher.hexdigest()}"

    def write_bytes(
        self,
        data: bytes,
        tags: Mapping[str, str] | None = None,
        expect: Expected | None = None,
    ) -> Written:
        hasher = new_hasher(self.algorithm)
        hasher.update(data)
        digest = self._digest_of(hasher)
        if expect is not None:
            expect.check_bytes(digest, data)
        key = self.router(digest, tags or {})
        if not self.backend.create(key, data) and self.set_aside_if_bad(digest, len(data), key):
            self.backend.create(key, data)
        return Written(digest, len(data), key)

    def write_stream(
        self,
        source: Iterable[bytes] | BinaryIO,
        tags: Mapping[str, str] | None = None,
        expect: Expected | None = None,
    ) -> Written:
        hasher = new_hasher(self.algorithm)
        side = None if expect is None else expect.side_hasher()
        size = 0
        with self.backend.stage() as staged:
            for chunk in chunks(source):
                hasher.update(chunk)
                if side is not None:
                    side.update(chunk)
                staged.write(chunk)
                size += len(chunk)
            digest = self._digest_of(hasher)
            if expect is not None:  # leaving the block without a commit discards the bytes
                expect.check(digest, side)
            key = self.router(digest, tags or {})
            # checked before the commit: a stream cannot be read again to retry
            self.set_aside_if_bad(digest, size, key)
            staged.commit(key)
        return Written(digest, size, key)

    def write_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        expected: os.stat_result | None = None,
        expect: Expected | None = None,
        overlap: bool = True,
    ) -> Written:
        """Store one regular file; the bytes are read once.

        ``expected`` is the file's stat from a directory scan: the file is stored only if
        it is still that file, unchanged, once read (which saves a stat per file).
        ``expect``: the digest the caller knows, checked before the blob is published.
        Without ``overlap`` a large file is hashed on this thread alone
        (:func:`~datakeep.copying.copy_hashed`), for callers that store several at once.
        """
        with source_file(path, expected) as (fd, before):
            if link == "copy" and before.st_size <= SMALL_FILE:
                # raw reads: a buffered file object costs four more system calls
                data = read_whole(fd, before.st_size)
                check_unchanged(fd, before, path)
                return self.write_bytes(data, tags, expect)
            with open(fd, "rb", closefd=False) as f:
                if link != "copy":
                    written = self._write_linked(f, Path(path), before.st_size, tags, link, expect)
                    if written is not None:
                        return written
                    f.seek(0)
                if self.files is not None and before.st_size >= CHUNK:
                    written = self._copy_file_in(fd, before.st_size, tags, expect, overlap)
                else:
                    written = self.write_stream(f, tags, expect)
                check_unchanged(fd, before, path)
                return written

    def _copy_file_in(
        self,
        fd: int,
        size: int,
        tags: Mapping[str, str] | None,
        expect: Expected | None,
        overlap: bool,
    ) -> Written:
        """Store ``size`` bytes of the open file ``fd`` copied in the kernel, named by the
        hash of the copy itself (the caller checks that the file did not change)."""
        assert self.files is not None
        for _attempt in range(2):  # copies by offset: a second one needs no seek
            with self.files.stage() as staged:
                side = None if expect is None else expect.side_hasher()
                digest, copied = staged.copy_from(fd, size, self.algorithm, side, overlap)
                if expect is not None:  # the copy is discarded unless committed
                    expect.check(digest, side)
                key = self.router(digest, tags or {})
                if staged.commit(key) or not self.set_aside_if_bad(digest, copied, key):
                    break
        return Written(digest, copied, key)

    def read_small_file(
        self, path: str | os.PathLike[str], expected: os.stat_result, into: dict[str, bytes]
    ) -> str:
        """Read and hash a small regular file into ``into`` (digest -> bytes), to be
        stored with :meth:`write_packs`; returns its digest. ``expected`` as for
        :meth:`write_file`."""
        with source_file(path, expected) as (fd, before):
            data = read_whole(fd, before.st_size)
            check_unchanged(fd, before, path)
        return self.hash_into(data, into)

    def hash_into(self, data: bytes, into: dict[str, bytes]) -> str:
        """Hash ``data`` into ``into`` (digest -> bytes) for :meth:`write_packs`; its digest."""
        hasher = new_hasher(self.algorithm)
        hasher.update(data)
        digest = self._digest_of(hasher)
        into.setdefault(digest, data)
        return digest

    def write_pack(self, blobs: Mapping[str, bytes]) -> list[Written]:
        """Store ``blobs`` (digest -> bytes) as one pack, whatever the index holds; they
        are not yet recorded."""
        key, data, entries = build_pack(blobs.items())
        # content-addressed: an existing pack is the same, unless it is damaged
        if not self.backend.create(key, data) and self.set_aside_if_bad(
            pack_digest(key), len(data), key
        ):
            self.backend.create(key, data)
        return [Written(e.digest, e.length, member_key(key, e.offset, e.length)) for e in entries]

    def blob_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key in the backend starting with ``prefix`` (packs and quarantine too)."""
        if self.files is not None:  # a file backend lists without a stat per blob
            return self.files.keys(prefix)
        return (info.key for info in self.backend.list(prefix))

    def sync_blobs(self) -> None:
        """Make every blob written so far durable (a no-op where each write already is)."""
        if self.files is not None:
            self.files.sync()

    def _write_linked(
        self,
        f: BinaryIO,
        path: Path,
        size: int,
        tags: Mapping[str, str] | None,
        link: LinkMode,
        expect: Expected | None,
    ) -> Written | None:
        """Store ``path`` by hard link or reflink; None means fall back to a copy."""
        files = self.files
        if files is None:
            if link == "hardlink":
                raise LinkUnsupported(f"backend {self.backend.name} cannot hold hard links")
            return None
        before = os.fstat(f.fileno())
        hasher = new_hasher(self.algorithm)
        side = None if expect is None else expect.side_hasher()
        for chunk in chunks(f):
            hasher.update(chunk)
            if side is not None:
                side.update(chunk)
        check_unchanged(f.fileno(), before, path)
        digest = self._digest_of(hasher)
        if expect is not None:  # before anything is linked in
            expect.check(digest, side)
        key = self.router(digest, tags or {})
        tries: list[Literal["reflink", "hardlink"]] = (
            ["hardlink"] if link == "hardlink" else ["reflink", "hardlink"]
        )
        for how in tries:
            if how == "reflink" and not self._reflink_ok:
                continue
            try:
                published = files.ingest(key, path, how)
                if not published and self.set_aside_if_bad(digest, size, key):
                    published = files.ingest(key, path, how)
            except LinkUnsupported:
                if how == "reflink":
                    self._reflink_ok = False
                    continue
                if link == "hardlink":
                    raise
                return None
            if os.stat(path).st_mtime_ns != before.st_mtime_ns:
                # changed between hashing and linking: the blob may not match its name
                if published:
                    self.backend.delete(key)
                raise InvalidInput(f"{path} changed while it was being stored")
            return Written(digest, size, key)
        return None
