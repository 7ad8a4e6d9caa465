"""Opening keeps from a service: ``open_or_init`` (exactly that directory, created if
absent, many processes at once) and its async twin; ``AsyncKeep.wrap`` over an open keep;
an ``AsyncKeep`` opened by several tasks at once, or cancelled while it opens."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

import datakeep
from datakeep import aio
from datakeep.aio import AsyncKeep
from datakeep.errors import (
    InvalidInput,
    InvalidPath,
    NotFound,
    UnknownAlgorithm,
)
from datakeep.keep import Keep


def test_open_or_init_creates_then_opens_the_same_keep(
    tmp_path: Path, index_url: str | None
) -> None:
    where = tmp_path / "new" / "nested"  # absent: created, parents too
    with datakeep.open_or_init(where, index=index_url) as keep:
        assert keep.path == where / ".datakeep"
        assert keep.algorithm == "blake3"
        c = keep.put(b"first", tags={"k": "v"})
    with datakeep.open_or_init(where, index=index_url) as keep:
        assert keep.get(c.digest) == b"first"
        assert keep.info(c.digest).tags == {"k": "v"}
    # settings not given take the keep's own: no index URL needed to open it again
    with datakeep.open_or_init(where) as keep:
        assert keep.get(c.digest) == b"first"
    with datakeep.open(where) as keep:  # the command line's search finds it too
        assert keep.exists(c.digest)


def test_open_or_init_uses_the_settings_given_for_a_new_keep(tmp_path: Path) -> None:
    with datakeep.open_or_init(tmp_path, algorithm="sha256") as keep:
        assert keep.algorithm == "sha256"
        assert keep.put(b"x").digest.startswith("sha256:")
    with datakeep.open_or_init(tmp_path, algorithm="sha256") as keep:
        assert keep.algorithm == "sha256"


def test_open_or_init_takes_exactly_that_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with datakeep.init(tmp_path) as outer:
        outer_digest = outer.put(b"outer").digest
    other = tmp_path / "elsewhere"
    with datakeep.init(other) as elsewhere:
        elsewhere.put(b"elsewhere")
    monkeypatch.setenv("DATAKEEP_DIR", str(other))
    inner = tmp_path / "project" / "sub"
    inner.mkdir(parents=True)
    # neither the keep above nor $DATAKEEP_DIR: a new keep right here
    with datakeep.open_or_init(inner) as keep:
        assert keep.path == inner / ".datakeep"
        assert keep.find().items == []
        assert not keep.exists(outer_digest)
    assert (inner / ".datakeep" / "keep.json").is_file()
    # datakeep.open keeps its search: $DATAKEEP_DIR wins
    with datakeep.open(inner) as keep:
        assert keep.path == other / ".datakeep"


def test_open_or_init_refuses_an_existing_keep_with_other_settings(
    tmp_path: Path, index_url: str | None
) -> None:
    with datakeep.open_or_init(tmp_path, index=index_url) as keep:
        keep.put(b"kept")
    config = (tmp_path / ".datakeep" / "keep.json").read_bytes()
    with pytest.raises(InvalidInput, match="blake3 digests, not sha256"):
        datakeep.open_or_init(tmp_path, algorithm="sha256")
    with pytest.raises(InvalidInput, match="the index"):
        datakeep.open_or_init(tmp_path, index="postgresql://someone@elsewhere/db")
    with pytest.raises(InvalidInput, match="blobs"):
        datakeep.open_or_init(tmp_path, blobs=tmp_path / "other-blobs")
    with pytest.raises(InvalidInput, match="endpoint"):
        datakeep.open_or_init(tmp_path, endpoint="http://127.0.0.1:9000")
    assert (tmp_path / ".datakeep" / "keep.json").read_bytes() == config
    assert not (tmp_path / "other-blobs").exists()
    # the settings it has are accepted
    with datakeep.open_or_init(tmp_path, algorithm="blake3", index=index_url) as keep:
        assert len(keep.find().items) == 1


def test_open_or_init_bad_inputs_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnknownAlgorithm):
        datakeep.open_or_init(tmp_path / "a", algorithm="sha1")
    with pytest.raises(InvalidInput, match="database URL"):
        datakeep.open_or_init(tmp_path / "b", index="index.sqlite")
    with pytest.raises(InvalidInput, match="s3:// locations only"):
        datakeep.open_or_init(tmp_path / "c", endpoint="http://127.0.0.1:9000")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(InvalidPath, match="cannot create"):
        datakeep.open_or_init(tmp_path / "file")
    with datakeep.init(tmp_path / "d"):
        pass
    # the keep's own directory is not a place for another keep
    with pytest.raises(InvalidPath, match=r"holds \.datakeep"):
        datakeep.open_or_init(tmp_path / "d" / ".datakeep")
    assert not (tmp_path / "d" / ".datakeep" / ".datakeep").exists()
    # an unreadable keep.json is reported, not replaced
    (tmp_path / "e" / ".datakeep").mkdir(parents=True)
    (tmp_path / "e" / ".datakeep" / "keep.json").write_text("{")
    with pytest.raises(InvalidInput, match="unreadable"):
        datakeep.open_or_init(tmp_path / "e")
    assert (tmp_path / "e" / ".datakeep" / "keep.json").read_text() == "{"


def test_open_or_init_with_an_unreachable_index_leaves_no_keep(tmp_path: Path) -> None:
    from datakeep.errors import IndexFailure

    with pytest.raises(IndexFailure):
        datakeep.open_or_init(tmp_path / "p", index="postgresql://nobody@127.0.0.1:1/none")
    assert not (tmp_path / "p" / ".datakeep").exists()


def _open_or_init_and_put(
    path: str, index: str | None, n: int, barrier: threading.Barrier
) -> tuple[str, str]:
    barrier.wait()  # every process calls open_or_init at the same moment
    with datakeep.open_or_init(path, index=index) as keep:
        return str(keep.path), keep.put(f"writer {n}".encode()).digest


def test_many_processes_open_or_init_one_new_directory_at_once(
    tmp_path: Path, index_url: str | None
) -> None:
    where = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    n = 6
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            results = pool.starmap(
                _open_or_init_and_put, [(str(where), index_url, i, barrier) for i in range(n)]
            )
    assert {path for path, _digest in results} == {str(where / ".datakeep")}
    assert not list((where / ".datakeep").glob(".keep.json.*")), "a temporary file is left"
    config = json.loads((where / ".datakeep" / "keep.json").read_text())
    assert config["index"] == (index_url or "index.sqlite")
    with datakeep.open(where) as keep:
        stored = {c.digest for c in keep.find(limit=100).items}
    assert stored == {digest for _path, digest in results}
    assert len(stored) == n


def test_open_or_init_async(tmp_path: Path, index_url: str | None) -> None:
    async def main() -> str:
        async with datakeep.open_or_init_async(tmp_path / "svc", index=index_url) as akeep:
            c = await akeep.put(b"from a service")
            assert await akeep.get(c.digest) == b"from a service"
        async with datakeep.open_or_init_async(tmp_path / "svc") as akeep:
            assert await akeep.exists(c.digest)
        return c.digest

    digest = asyncio.run(main())
    with datakeep.open(tmp_path / "svc") as keep:
        assert keep.get(digest) == b"from a service"

    async def refused() -> None:
        async with datakeep.open_or_init_async(tmp_path / "svc", algorithm="md5"):
            pass

    with pytest.raises(InvalidInput, match="not md5"):
        asyncio.run(refused())


def test_async_keep_wraps_an_open_keep(tmp_path: Path, index_url: str | None) -> None:
    keep = datakeep.open_or_init(tmp_path, index=index_url)
    c = keep.put(b"shared by sync and async code")

    async def main(close_keep: bool) -> None:
        async with AsyncKeep.wrap(keep, close_keep=close_keep) as akeep:
            assert akeep.keep is keep
            assert await akeep.get(c.digest) == b"shared by sync and async code"
            d = await akeep.put(b"written through the wrapper")
            assert keep.get(d.digest) == b"written through the wrapper"

    asyncio.run(main(close_keep=False))
    assert keep.get(c.digest)  # still open: the wrapper did not close it
    closed: list[bool] = []
    original = keep.close

    def close() -> None:
        closed.append(True)
        original()

    keep.close = close  # type: ignore[method-assign]
    asyncio.run(main(close_keep=True))
    assert closed == [True]
    with pytest.raises(InvalidInput, match="takes a Keep"):
        AsyncKeep.wrap(str(tmp_path))  # type: ignore[arg-type]


class _CountingOpener:
    """Opens the keep at ``path`` (a real one), counting how many it opened and closed,
    slowly enough that concurrent openers overlap."""

    def __init__(self, path: Path, hold: threading.Event | None = None) -> None:
        self.path = path
        self.hold = hold
        self.opened: list[Keep] = []
        self.closed: list[Keep] = []

    def __call__(self) -> Keep:
        if self.hold is not None:
            assert self.hold.wait(10)
        keep = datakeep.open_or_init(self.path)
        original = keep.close

        def close() -> None:
            self.closed.append(keep)
            original()

        keep.close = close  # type: ignore[method-assign]
        self.opened.append(keep)
        return keep


def test_two_tasks_opening_one_async_keep_get_one_keep(tmp_path: Path) -> None:
    opener = _CountingOpener(tmp_path, threading.Event())

    async def main() -> None:
        akeep = AsyncKeep.opened_by(opener)
        first = asyncio.create_task(akeep.open())
        second = asyncio.create_task(akeep.open())
        await asyncio.sleep(0.05)  # both are waiting now
        assert opener.hold is not None
        opener.hold.set()
        assert await first is akeep and await second is akeep
        assert len(opener.opened) == 1 and akeep.keep is opener.opened[0]
        await akeep.close()
        await akeep.close()  # a second close does nothing
        assert opener.closed == opener.opened

    asyncio.run(main())


def test_the_default_async_keep_opens_once_for_concurrent_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datakeep.init(tmp_path).close()
    made: list[Keep] = []

    class CountedKeep(Keep):  # the real keep, counted as it is opened
        def __init__(self, keep_dir: Path) -> None:
            super().__init__(keep_dir)
            made.append(self)

    monkeypatch.setattr(aio, "Keep", CountedKeep)

    async def main() -> None:
        akeep = datakeep.open_async(tmp_path)
        opened = await asyncio.gather(*(akeep.open() for _ in range(8)))
        assert all(a is akeep for a in opened)
        assert len(made) == 1 and akeep.keep is made[0]
        await asyncio.gather(*(akeep.open() for _ in range(3)))
        assert len(made) == 1
        await akeep.close()
        with pytest.raises(RuntimeError):
            akeep.keep  # noqa: B018

    asyncio.run(main())


def test_a_task_cancelled_while_the_keep_opens_leaks_nothing(tmp_path: Path) -> None:
    opener = _CountingOpener(tmp_path, threading.Event())

    async def main() -> None:
        akeep = AsyncKeep.opened_by(opener)
        task = asyncio.create_task(akeep.open())
        await asyncio.sleep(0.05)  # the opener is running in its thread, held
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert opener.hold is not None
        opener.hold.set()
        for _ in range(200):  # the thread finishes opening, then closes what it opened
            if opener.closed:
                break
            await asyncio.sleep(0.01)
        assert len(opener.opened) == 1 and opener.closed == opener.opened
        # the next open is a fresh one, and works
        await akeep.open()
        assert len(opener.opened) == 2 and akeep.keep is opener.opened[1]
        await akeep.close()
        assert opener.closed == opener.opened

    asyncio.run(main())


def test_an_async_keep_that_fails_to_open_can_be_closed(tmp_path: Path) -> None:
    async def main() -> None:
        akeep = datakeep.open_async(tmp_path / "nothing-here")
        with pytest.raises(NotFound):
            await akeep.open()
        await akeep.close()
        await akeep.close()

    asyncio.run(main())
