"""AsyncFileStore: every I/O call of :class:`FileStore`, run off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..keep import Keep
from .manifest import FileEntry
from .store import FileStore

__all__ = ["AsyncFileStore"]

R = TypeVar("R")


class AsyncFileStore:
    """``async with AsyncFileStore.open("results") as store: await store.add_file(...)``."""

    def __init__(self, store: FileStore, threads: int = 4) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="datakeep-files")

    @classmethod
    async def create(cls, root: str | os.PathLike[str] | Keep, name: str) -> AsyncFileStore:
        return cls(await asyncio.to_thread(FileStore.create, root, name))

    @classmethod
    async def open(
        cls, root: str | os.PathLike[str] | Keep, name: str | None = None
    ) -> AsyncFileStore:
        return cls(await asyncio.to_thread(FileStore.open, root, name))

    async def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, partial(fn, *args, **kwargs)
        )

    async def add_file(
        self, *namespace_and_path: str | os.PathLike[str], new_name: str | None = None
    ) -> dict[str, Any]:
        return await self._run(self.store.add_file, *namespace_and_path, new_name=new_name)

    async def fetch_file(
        self,
        *namespace_and_name: str,
        hash: str | None = None,
        to: str | os.PathLike[str] | None = None,
    ) -> Path:
        return await self._run(self.store.fetch_file, *namespace_and_name, hash=hash, to=to)

    async def fetch_uuid(
        self, uuid: str, hash: str | None = None, to: str | os.PathLike[str] | None = None
    ) -> Path:
        return await self._run(self.store.fetch_uuid, uuid, hash, to)

    async def get_hash(self, uuid: str) -> str:
        return await self._run(self.store.manifest.get_hash, uuid)

    async def get_uuid(self, *namespace_and_name: str) -> str:
        return await self._run(self.store.manifest.get_uuid, *namespace_and_name)

    async def list_resources(self, *namespace: str) -> list[FileEntry]:
        return await self._run(self.store.manifest.list_resources, *namespace)

    async def info(self) -> dict[str, Any]:
        return await self._run(self.store.info)

    async def close(self) -> None:
        """Close the store, then the threads; idempotent."""
        if not self._pool._shutdown:
            await self._run(self.store.close)
            self._pool.shutdown(wait=True)

    async def __aenter__(self) -> AsyncFileStore:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
