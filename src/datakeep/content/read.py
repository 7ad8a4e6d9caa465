"""The read path: every way out of the store (bytes, a stream, a reader, many small
blobs at once, a file) re-hashes what it hands out (:mod:`.verify`)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from ..backends import Backend, FileBackend
from ..copying import copy_verified, hash_fd
from ..errors import DatakeepError, IntegrityError, LinkUnsupported, NotFound
from ..index import inline_blobs
from .catalog import Catalog
from .model import CHUNK, INLINE_KEY, Content, LinkMode, Stored
from .packs import pack_member
from .pointers import stored_as_file
from .sources import read_whole
from .verify import VerifiedReader, check_bytes, drain_verified, verify_file

__all__ = ["BlobReading", "creation_umask", "write_new_file"]


class BlobReading(Catalog):
    """Verified reads and exports; part of :class:`~datakeep.content.ContentStore`."""

    backend: Backend
    files: FileBackend | None

    def open_blob(self, key: str, digest: str) -> BinaryIO:
        """The raw, unverified bytes behind a placement key (inline, in a pack or a blob
        of its own in the backend)."""
        member = pack_member(key)
        if member is not None:
            return io.BytesIO(self.backend.read(member.pack, member.offset, member.end))
        if key != INLINE_KEY:
            return self.backend.open(key)
        with self.db.read("reading an inline blob") as conn:
            data = conn.execute(
                select(inline_blobs.c.data).where(inline_blobs.c.digest == digest)
            ).scalar()
        if data is None:
            raise NotFound(f"inline blob of {digest} is missing from the index")
        return io.BytesIO(data)

    def open(self, digest: str) -> io.BufferedReader:
        digest, size, key = self._locate(digest)
        return io.BufferedReader(VerifiedReader(self.open_blob(key, digest), digest, size), CHUNK)

    def get(self, digest: str) -> bytes:
        digest, size, key = self._locate(digest)
        with self.open_blob(key, digest) as raw:
            reader = VerifiedReader(raw, digest, size)
            buffer = bytearray(size + 1)
            view = memoryview(buffer)
            filled = 0
            while n := reader.readinto(view[filled:]):
                filled += n
        del view
        del buffer[filled:]
        return bytes(buffer)

    def read_many(self, items: Sequence[Stored]) -> Iterator[tuple[Stored, bytes | DatakeepError]]:
        """The verified bytes of many small stored contents, in the order given, each with
        the error that stands for it instead if it is missing or wrong. Read by key with no
        index lookup; the members of one pack with one read of the span they cover."""
        members = [pack_member(item.key) for item in items]  # each key parsed once
        spans: dict[str, tuple[int, int]] = {}
        for member in members:
            if member is not None:
                start, end = spans.get(member.pack, (member.offset, member.end))
                spans[member.pack] = (min(start, member.offset), max(end, member.end))
        loaded: dict[str, tuple[int, bytes] | NotFound] = {}
        for item, member in zip(items, members, strict=True):
            try:
                if member is None:
                    with self.open_blob(item.key, item.digest) as f:
                        data = f.read()
                else:
                    span = loaded.get(member.pack)
                    if span is None:
                        span = loaded[member.pack] = self._read_span(
                            member.pack, *spans[member.pack]
                        )
                    if isinstance(span, NotFound):
                        raise span
                    at = member.offset - span[0]
                    data = span[1][at : at + member.length]
                check_bytes(data, item.digest, item.size)
            except DatakeepError as exc:
                yield item, exc
                continue
            yield item, data

    def read_pack_members(
        self, pack: str, members: Sequence[tuple[str, int, int, int]]
    ) -> Iterator[bytes | DatakeepError]:
        """The verified bytes of members of the pack ``pack``, given as (digest, size,
        offset, length) and in that order, each with the error that stands for it instead
        if it is missing or wrong: :meth:`read_many` for callers that have grouped their
        contents by pack already, with one read of the span the members cover."""
        if not members:
            return
        start = min(offset for _, _, offset, _ in members)
        span = self._read_span(
            pack, start, max(offset + length for _, _, offset, length in members)
        )
        for digest, size, offset, length in members:
            if isinstance(span, NotFound):
                yield span
                continue
            data = span[1][offset - start : offset - start + length]
            try:
                check_bytes(data, digest, size)
            except DatakeepError as exc:
                yield exc
                continue
            yield data

    def _read_span(self, pack: str, start: int, end: int) -> tuple[int, bytes] | NotFound:
        """(``start``, the bytes from ``start`` to ``end`` of the pack ``pack``), or the
        :class:`NotFound` that stands for every member of a missing pack."""
        try:
            return start, self.backend.read(pack, start, end)
        except NotFound as exc:
            return exc

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.open(digest) as reader:
            while chunk := reader.read(chunk_size):
                yield chunk

    def check(self, item: Stored) -> None:
        """Re-hash a stored blob: :class:`NotFound` if it is gone, :class:`IntegrityError`
        if its bytes are not the content, ``OSError`` if it cannot be read."""
        if self.files is not None and stored_as_file(item.key):
            verify_file(self.files.path_of(item.key), item.digest, item.size)
        else:
            with self.open_blob(item.key, item.digest) as raw:
                drain_verified(raw, item.digest, item.size)

    def verify(self, digest: str) -> Content:
        """Re-hash one stored blob; :class:`IntegrityError` if it does not match."""
        info = self.info(digest)
        with self.open_blob(self.key_of(info.digest), info.digest) as raw:
            drain_verified(raw, info.digest, info.size)
        return info

    def export_file(
        self,
        key: str,
        digest: str,
        size: int,
        dest: Path,
        link: LinkMode = "copy",
        mode: int | None = None,
        atomic: bool = True,
        overlap: bool = True,
    ) -> bool:
        """Write the blob at ``key`` to ``dest`` (which must not exist), verified.

        Returns True if ``dest`` was hard-linked to the stored blob (read-only and shared;
        ``mode`` is then not applied), False if it is a copy. With ``atomic`` the copy is
        written beside ``dest`` and renamed once verified; a caller that already builds in
        a private directory (tree export) passes False and saves the rename. Without
        ``overlap`` a large copy is hashed on this thread alone
        (:func:`~datakeep.copying.copy_hashed`), for callers that keep the cores busy.
        """
        target = dest.with_name(f".{dest.name}.datakeep-tmp") if atomic else dest
        try:
            if self.files is not None and stored_as_file(key):
                source = self.files.path_of(key)
                try:
                    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise NotFound(f"blob of {digest} is missing from the store") from None
                try:
                    if link != "copy":
                        _verify_fd(src, digest, size)
                        try:
                            os.link(source, dest)
                            return True
                        except (FileExistsError, FileNotFoundError):
                            raise
                        except OSError:
                            if link == "hardlink":
                                raise LinkUnsupported(
                                    f"cannot hard-link {digest} to {dest}"
                                ) from None
                    if size >= CHUNK:
                        with open(target, "x+b") as dst:
                            copy_verified(src, dst.fileno(), digest, size, overlap)
                    else:
                        data = read_whole(src, size)
                        check_bytes(data, digest, size)
                        write_new_file(target, data, mode)
                        mode = None  # already set, on the open file
                finally:
                    os.close(src)
            else:
                if link == "hardlink":
                    raise LinkUnsupported(f"{digest} is not stored as a file: cannot hard-link")
                with self.open_blob(key, digest) as raw, open(target, "xb") as out:
                    drain_verified(raw, digest, size, out.write)
            if mode is not None:
                os.chmod(target, mode)
            if atomic:
                os.rename(target, dest)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return False


def _verify_fd(fd: int, digest: str, size: int) -> None:
    """:class:`IntegrityError` unless the open blob ``fd`` is the content ``digest`` of
    ``size`` bytes; hashed a window at a time (:func:`~datakeep.copying.hash_fd`), so a
    large blob is never mapped whole."""
    actual_size = os.fstat(fd).st_size
    if actual_size < size:
        raise IntegrityError(f"{digest} is truncated: {actual_size} of {size} bytes stored")
    if actual_size > size:
        raise IntegrityError(f"{digest} is longer than its recorded {size} bytes")
    actual, _ = hash_fd(fd, size, digest.partition(":")[0])
    if actual != digest:
        raise IntegrityError(f"{digest} is corrupted: its stored bytes hash to {actual}")


def write_new_file(
    path: str | os.PathLike[str], data: bytes, mode: int | None = None, umask: int | None = None
) -> None:
    """Create ``path`` (it must not exist) holding ``data``, with ``mode`` if given.

    ``umask`` is what :func:`creation_umask` says of the directory, when the caller asked
    it: a mode that it leaves whole is then given at creation, sparing a system call.
    """
    exact = mode if mode is not None and umask is not None and not mode & umask else None
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if exact is None else exact
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None and exact is None:
            os.fchmod(fd, mode)  # on the open file: no second path lookup
    finally:
        os.close(fd)


def creation_umask(directory: str | os.PathLike[str]) -> int | None:
    """The umask through which files created in ``directory`` get their mode; None when
    that is not certain: a default ACL there takes the umask's place, and the umask is
    read where Linux shows it (``os.umask`` can only be read by setting it, which races
    with other threads creating files)."""
    try:
        if "system.posix_acl_default" in os.listxattr(directory):
            return None
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None
