"""The facade's reads: verified always, and served from a mirror (a remote that holds a
copy) when the primary copy is missing or damaged, saying so; the primary is never
repaired behind the caller's back (``pull`` and ``repair`` do that). A content may be
named by its digest or by an alias (another digest of its bytes, checked when it was
put); the bytes are always verified against the content's own digest."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .content import CHUNK, Content, ContentStore, LinkMode
from .errors import AlreadyExists, IntegrityError, NotFound
from .progress import ProgressCallback
from .trees.export import export_tree

__all__ = ["SPOOL_MAX", "MirroredReads"]

T = TypeVar("T")
_log = logging.getLogger("datakeep")
SPOOL_MAX = 4 << 20
"""Blobs up to this size are streamed from memory after one verified read; larger ones
are read twice, which costs less than holding them (fresh memory is slow to fill)."""


class MirroredReads:
    """Reads of :class:`~datakeep.keep.Keep`: bytes, readers, chunks and exports."""

    store: ContentStore
    on_fallback: Callable[[str], None] | None
    """Told (one line) whenever a read is served by a mirror because the primary copy is
    missing or bad."""

    def get(self, digest: str) -> bytes:
        """The bytes of ``digest``, verified; from a mirror if the primary copy fails."""
        try:
            return self.store.get(digest)
        except (NotFound, IntegrityError) as exc:
            from .remotes import read_from_mirror

            return self._fall_back(digest, exc, read_from_mirror)

    def open(self, digest: str) -> io.BufferedReader:
        """A binary reader that raises :class:`IntegrityError` before handing out bad bytes;
        from a mirror if the primary copy is missing."""
        try:
            return self.store.open(digest)
        except NotFound as exc:
            from .remotes import open_from_mirror

            return self._fall_back(digest, exc, open_from_mirror)

    def _fall_back(
        self, digest: str, failure: Exception, read: Callable[[ContentStore, str], tuple[str, T]]
    ) -> T:
        """Serve ``digest`` from a mirror, saying so; else raise the primary's failure."""
        own = self.store.canonical(digest)  # what a mirror's inventory knows, not an alias
        try:
            mirror, result = read(self.store, own)
        except NotFound:
            raise failure from None
        message = (
            f"{own} served from mirror {mirror!r}: the primary copy failed ({failure}); "
            f"it was not repaired (see 'datakeep pull {mirror} {own}' or 'datakeep repair')"
        )
        _log.warning(message)
        if self.on_fallback is not None:
            self.on_fallback(message)
        return result

    def stream(
        self, digest: str, chunk_size: int = CHUNK, verify_first: bool = True
    ) -> Iterator[bytes]:
        """Chunks of ``digest``, verified; from a mirror if the primary copy fails.

        With ``verify_first`` (the default) the whole blob is checked before the first
        chunk is handed out, so a consumer never receives a byte of a damaged blob: a
        blob up to :data:`SPOOL_MAX` is read once into memory, a larger one twice (the
        second read mostly from the page cache) and checked both times.
        ``verify_first=False`` reads once and may hand out chunks of a damaged blob
        before it raises :class:`IntegrityError` at the end.
        """
        if not verify_first:
            return self.store.stream(digest, chunk_size)
        return self._checked_stream(digest, chunk_size)

    def _checked_stream(self, digest: str, chunk_size: int) -> Iterator[bytes]:
        if self.store.info(digest).size > SPOOL_MAX:
            try:
                self.store.verify(digest)
            except (NotFound, IntegrityError) as exc:
                from .remotes import read_from_mirror

                data = self._fall_back(digest, exc, read_from_mirror)
            else:
                yield from self.store.stream(digest, chunk_size)
                return
        else:
            data = self.get(digest)
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])

    def export(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        link: LinkMode = "copy",
        progress: ProgressCallback | None = None,
    ) -> Content:
        """Write a blob to the file ``dest`` or a tree to the directory ``dest``, verified."""
        info = self.store.info(digest)
        digest = info.digest  # an alias names the content, which is checked by its own
        target = Path(dest)
        if info.kind == "tree":
            # a file whose stored copy fails comes from a mirror, reported like a get
            export_tree(self.store, digest, target, link, progress, fallback=self.get)
            return info
        if target.exists() or target.is_symlink():
            raise AlreadyExists(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.store.export_file(self.store.key_of(digest), digest, info.size, target, link)
        except (NotFound, IntegrityError) as exc:
            from .remotes import read_from_mirror

            data = self._fall_back(digest, exc, read_from_mirror)
            staging = target.with_name(f".{target.name}.datakeep-tmp")
            staging.write_bytes(data)
            staging.rename(target)
        return info
