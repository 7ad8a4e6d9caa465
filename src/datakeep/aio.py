"""Async twins of every I/O operation of :class:`~datakeep.keep.Keep`.

Each call runs the blocking work in a worker thread, so the event loop never waits on a
disk, a hash or a database lock. An async iterable given to :meth:`AsyncKeep.put_stream`
is consumed on the event loop while the hashing and writing happen in the thread.

An :class:`AsyncKeep` opens its keep once, however many tasks ask at the same moment, and
a task cancelled while the keep opens leaves nothing open behind it.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from .content import CHUNK, Content, LinkMode, Page
from .errors import InvalidInput
from .keep import Keep, find_keep_dir
from .progress import ProgressCallback

if TYPE_CHECKING:
    from .maintenance import FsckReport, GcReport
    from .maintenance.verify import VerifyReport
    from .remotes import RepairReport, TransferReport

__all__ = ["AsyncKeep", "AsyncReader"]

T = TypeVar("T")
_END = object()


class AsyncReader:
    """A verified reader whose reads run off the event loop."""

    def __init__(self, reader: io.BufferedReader, run: Any) -> None:
        self._reader = reader
        self._run = run

    async def read(self, size: int = -1) -> bytes:
        data: bytes = await self._run(self._reader.read, size)
        return data

    async def close(self) -> None:
        await self._run(self._reader.close)

    async def __aenter__(self) -> AsyncReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _pull(source: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """Iterate an async iterable from a worker thread, each step run on ``loop``."""
    iterator = aiter(source)
    while True:
        chunk = asyncio.run_coroutine_threadsafe(anext(iterator, _END), loop).result()
        if chunk is _END:
            return
        yield chunk  # type: ignore[misc]


def _open_found(path: str | os.PathLike[str]) -> Keep:
    return Keep(find_keep_dir(path))


def _close_opened(job: Future[Keep]) -> None:
    """Close the keep an abandoned opening opened (if it did)."""
    if not job.cancelled() and job.exception() is None:
        job.result().close()


class AsyncKeep:
    """``async with datakeep.open_async(".") as keep: await keep.put(b"...")``."""

    def __init__(self, path: str | os.PathLike[str] = ".", *, max_workers: int = 8) -> None:
        """The keep that holds ``path`` (searched upward, as :func:`datakeep.open`),
        opened by ``async with`` or :meth:`open`."""
        self._opener: Callable[[], Keep] = partial(_open_found, path)
        self._keep: Keep | None = None
        self._owns_keep = True
        self._opening = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="datakeep")

    @classmethod
    def wrap(cls, keep: Keep, *, close_keep: bool = False, max_workers: int = 8) -> AsyncKeep:
        """Async twins of the calls of ``keep``, already open (in this thread or any).
        Closing the :class:`AsyncKeep` leaves ``keep`` open unless ``close_keep``."""
        if not isinstance(keep, Keep):
            raise InvalidInput(f"AsyncKeep.wrap() takes a Keep, not {type(keep).__name__}")
        wrapped = cls(keep.path, max_workers=max_workers)
        wrapped._keep = keep
        wrapped._owns_keep = close_keep
        return wrapped

    @classmethod
    def opened_by(cls, opener: Callable[[], Keep], *, max_workers: int = 8) -> AsyncKeep:
        """An async keep that ``opener()`` opens, in a worker thread, on ``async with`` or
        :meth:`open`: ``AsyncKeep.opened_by(lambda: datakeep.open(".", router=...))``."""
        unopened = cls(max_workers=max_workers)
        unopened._opener = opener
        return unopened

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    @property
    def keep(self) -> Keep:
        """The underlying synchronous keep (opened by ``async with`` or :meth:`open`)."""
        if self._keep is None:
            raise RuntimeError("use 'async with datakeep.open_async(...)' or 'await keep.open()'")
        return self._keep

    async def open(self) -> AsyncKeep:
        """Open the keep, once: tasks asking meanwhile wait for the same one."""
        async with self._opening:
            if self._keep is None:
                job = self._pool.submit(self._opener)
                try:
                    self._keep = await asyncio.shield(asyncio.wrap_future(job))
                except asyncio.CancelledError:
                    # the thread opens it anyway: close what it opens, nobody else will
                    if not job.cancel():
                        job.add_done_callback(_close_opened)
                    raise
        return self

    async def close(self) -> None:
        """Close the keep (unless it was wrapped without ``close_keep``) and the threads;
        a second close does nothing."""
        async with self._opening:  # an opening under way finishes first, then is closed
            keep, self._keep = self._keep, None
            if keep is not None and self._owns_keep:
                await self._run(keep.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncKeep:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- writing -------------------------------------------------------------------------
    async def put(
        self, data: bytes, tags: Mapping[str, str] | None = None, expect: str | None = None
    ) -> Content:
        result: Content = await self._run(self.keep.put, data, tags, expect)
        return result

    async def put_stream(
        self,
        source: AsyncIterable[bytes] | Iterable[bytes] | BinaryIO,
        tags: Mapping[str, str] | None = None,
        expect: str | None = None,
    ) -> Content:
        if isinstance(source, AsyncIterable):
            source = _pull(source, asyncio.get_running_loop())
        result: Content = await self._run(self.keep.put_stream, source, tags, expect)
        return result

    async def put_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        expect: str | None = None,
    ) -> Content:
        result: Content = await self._run(self.keep.put_file, path, tags, link, expect)
        return result

    async def put_tree(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        progress: ProgressCallback | None = None,
    ) -> Content:
        result: Content = await self._run(self.keep.put_tree, path, tags, link, progress)
        return result

    async def tag(self, digest: str, tags: Mapping[str, str]) -> None:
        await self._run(self.keep.tag, digest, tags)

    async def untag(self, digest: str, *keys: str) -> int:
        result: int = await self._run(self.keep.untag, digest, *keys)
        return result

    # -- reading -------------------------------------------------------------------------
    async def get(self, digest: str) -> bytes:
        result: bytes = await self._run(self.keep.get, digest)
        return result

    async def open_reader(self, digest: str) -> AsyncReader:
        reader = await self._run(self.keep.open, digest)
        return AsyncReader(reader, self._run)

    async def stream(
        self, digest: str, chunk_size: int = CHUNK, verify_first: bool = True
    ) -> AsyncIterator[bytes]:
        """As :meth:`Keep.stream`: by default nothing is handed out before the whole blob
        is verified."""
        if not verify_first:
            reader = await self.open_reader(digest)
            async with reader:
                while chunk := await reader.read(chunk_size):
                    yield chunk
            return
        chunks = await self._run(self.keep.stream, digest, chunk_size)
        while (chunk := await self._run(next, chunks, _END)) is not _END:
            yield chunk

    async def info(self, digest: str) -> Content:
        result: Content = await self._run(self.keep.info, digest)
        return result

    async def exists(self, digest: str) -> bool:
        result: bool = await self._run(self.keep.exists, digest)
        return result

    async def aliases(self, digest: str) -> list[str]:
        result: list[str] = await self._run(self.keep.aliases, digest)
        return result

    async def find(
        self,
        tags: Mapping[str, str] | None = None,
        kind: str | None = None,
        limit: int = 100,
        after: str | None = None,
        has_tags: Iterable[str] = (),
        tag_prefixes: Mapping[str, str] | None = None,
    ) -> Page:
        result: Page = await self._run(
            self.keep.find, tags, kind, limit, after, has_tags, tag_prefixes
        )
        return result

    async def export(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        link: LinkMode = "copy",
        progress: ProgressCallback | None = None,
    ) -> Content:
        result: Content = await self._run(self.keep.export, digest, dest, link, progress)
        return result

    async def verify(self, digest: str, shallow: bool = False) -> Content:
        result: Content = await self._run(self.keep.verify, digest, shallow)
        return result

    async def verify_many(
        self,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        shallow: bool = False,
    ) -> VerifyReport:
        result: VerifyReport = await self._run(self.keep.verify_many, digests, progress, shallow)
        return result

    async def repair(self, progress: ProgressCallback | None = None) -> RepairReport:
        result: RepairReport = await self._run(self.keep.repair, progress)
        return result

    async def pin(self, digest: str, note: str = "") -> None:
        await self._run(self.keep.pin, digest, note)

    async def unpin(self, digest: str) -> bool:
        result: bool = await self._run(self.keep.unpin, digest)
        return result

    async def pins(self) -> list[str]:
        result: list[str] = await self._run(self.keep.pins)
        return result

    async def fsck(
        self, repair_index: bool = False, progress: ProgressCallback | None = None
    ) -> FsckReport:
        result: FsckReport = await self._run(self.keep.fsck, repair_index, progress)
        return result

    async def gc(
        self,
        grace_s: float = 24 * 3600.0,
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> GcReport:
        result: GcReport = await self._run(self.keep.gc, grace_s, dry_run, progress)
        return result

    async def push(
        self,
        remote: str | None = None,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        verify: bool = False,
    ) -> TransferReport:
        result: TransferReport = await self._run(self.keep.push, remote, digests, progress, verify)
        return result

    async def pull(
        self,
        remote: str | None = None,
        digests: Iterable[str] | None = None,
        progress: ProgressCallback | None = None,
        everything: bool = False,
    ) -> TransferReport:
        result: TransferReport = await self._run(
            self.keep.pull, remote, digests, progress, everything
        )
        return result
