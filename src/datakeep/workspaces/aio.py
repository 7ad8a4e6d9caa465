"""AsyncWorkspace: every I/O call of :class:`Workspace`, run off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from ..content import LinkMode
from ..keep import Keep
from ..progress import ProgressCallback
from .lineage import Step
from .manifest import Manifest
from .model import Changes, Resource, Snapshot
from .workspace import Workspace

__all__ = ["AsyncWorkspace"]

R = TypeVar("R")


class AsyncWorkspace:
    """``async with await AsyncWorkspace.open(".") as ws: await ws.snapshot("v1")``.

    Calls run one at a time on a worker thread, in the order they were awaited.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="datakeep-workspace")

    @classmethod
    async def open(cls, path: str | os.PathLike[str] = ".") -> AsyncWorkspace:
        return cls(await asyncio.to_thread(Workspace.open, path))

    @classmethod
    async def init(
        cls,
        path: str | os.PathLike[str] = ".",
        name: str | None = None,
        keep: Keep | str | os.PathLike[str] | None = None,
        results_template: str | None = None,
    ) -> AsyncWorkspace:
        return cls(await asyncio.to_thread(Workspace.init, path, name, keep, results_template))

    @classmethod
    async def clone(
        cls,
        location: str,
        dest: str | os.PathLike[str],
        name: str | None = None,
        snapshot: str | None = None,
        paths: Mapping[str, str | os.PathLike[str]] | None = None,
        endpoint: str | None = None,
    ) -> AsyncWorkspace:
        clone = partial(Workspace.clone, location, dest, name, snapshot, paths, endpoint)
        return cls(await asyncio.to_thread(clone))

    async def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def add_resource(
        self, name: str, role: str, local_path: str | os.PathLike[str], allow_outside: bool = False
    ) -> Resource:
        return await self._run(self.workspace.add_resource, name, role, local_path, allow_outside)

    async def resources(self) -> list[Resource]:
        return await self._run(self.workspace.resources)

    async def status(self, only: Iterable[str] | None = None) -> Changes:
        return await self._run(self.workspace.status, only)

    async def diff(self, a: str, b: str) -> Changes:
        return await self._run(self.workspace.diff, a, b)

    async def snapshot(
        self,
        tag: str | None = None,
        message: str = "",
        metrics: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        return await self._run(self.workspace.snapshot, tag, message, metrics, progress)

    async def history(
        self, newest_first: bool = True, max_count: int | None = None
    ) -> list[Snapshot]:
        return await self._run(self.workspace.history, newest_first, max_count)

    async def find_snapshot(self, name: str) -> Snapshot:
        return await self._run(self.workspace.find_snapshot, name)

    async def manifest(self, name: str) -> Manifest:
        return await self._run(self.workspace.manifest, name)

    async def remove_tag(self, name: str, tag: str) -> None:
        await self._run(self.workspace.remove_tag, name, tag)

    async def results_subdir(self, name: str) -> str | None:
        return await self._run(self.workspace.results_subdir, name)

    async def get_results(self, name: str) -> dict[str, Any]:
        return await self._run(self.workspace.get_results, name)

    async def delete_snapshot(self, name: str, include_results: bool = True) -> None:
        await self._run(self.workspace.delete_snapshot, name, include_results)

    async def restore(
        self,
        name: str,
        only: Iterable[str] | None = None,
        leave: Iterable[str] | None = None,
        link: LinkMode = "copy",
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Snapshot:
        return await self._run(self.workspace.restore, name, only, leave, link, force, progress)

    async def push(
        self, remote: str | None = None, progress: ProgressCallback | None = None
    ) -> int:
        return await self._run(self.workspace.push, remote, progress)

    async def pull(
        self,
        remote: str | None = None,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        return await self._run(self.workspace.pull, remote, force, progress)

    @asynccontextmanager
    async def step(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        inputs: Iterable[str] = (),
        code: Iterable[str] = (),
        outputs: Iterable[str] = (),
    ) -> AsyncIterator[Step]:
        """``async with ws.step("train", inputs=["data"]) as s: s.add_output("model")``."""
        manager = self.workspace.lineage.step(name, params, list(inputs), list(code), list(outputs))
        step = await self._run(manager.__enter__)
        try:
            yield step
        except BaseException as exc:
            await self._run(manager.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await self._run(manager.__exit__, None, None, None)

    async def lineage_entries(self) -> list[dict[str, Any]]:
        return await self._run(self.workspace.lineage.entries)

    async def derived_from(self, ref: str) -> tuple[list[dict[str, Any]], list[str]]:
        return await self._run(self.workspace.lineage.derived_from, ref)

    async def close(self) -> None:
        """Close the workspace, then the thread; idempotent."""
        if not self._pool._shutdown:
            await self._run(self.workspace.close)
            self._pool.shutdown(wait=True)

    async def __aenter__(self) -> AsyncWorkspace:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
