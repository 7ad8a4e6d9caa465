from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import datakeep
from datakeep.digest import hash_bytes
from datakeep.errors import IntegrityError, NotFound

from .conftest import blob_path, damage


@pytest.fixture
def project(tmp_path: Path, index_url: str | None) -> Path:
    datakeep.init(tmp_path, index=index_url).close()
    return tmp_path


def test_async_twins(project: Path) -> None:
    async def main() -> None:
        async with datakeep.open_async(project) as keep:
            c = await keep.put(b"async bytes", tags={"a": "1"})
            assert await keep.get(c.digest) == b"async bytes"
            assert await keep.exists(c.digest)
            assert (await keep.info(c.digest)).tags == {"a": "1"}
            assert (await keep.find({"a": "1"})).items[0].digest == c.digest
            await keep.tag(c.digest, {"b": "2"})
            assert await keep.untag(c.digest, "a") == 1

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(5):
                    await asyncio.sleep(0)
                    yield bytes([i]) * 100_000

            s = await keep.put_stream(chunks())
            expected = b"".join(bytes([i]) * 100_000 for i in range(5))
            assert s.digest == hash_bytes(expected)
            got = b"".join([chunk async for chunk in keep.stream(s.digest, 65536)])
            assert got == expected
            reader = await keep.open_reader(s.digest)
            async with reader:
                assert await reader.read(3) == b"\x00\x00\x00"

            (project / "d").mkdir()
            (project / "d" / "f").write_text("tree")
            tree = await keep.put_tree(project / "d")
            await keep.export(tree.digest, project / "out")
            assert (project / "out" / "f").read_text() == "tree"
            f = await keep.put_file(project / "d" / "f")
            assert (await keep.verify(f.digest)).size == 4
            assert (await keep.verify_many()).ok
            await keep.pin(tree.digest)
            assert await keep.pins() == [tree.digest]
            assert (await keep.fsck()).ok
            swept = (await keep.gc(grace_s=0)).swept
            assert tree.digest not in swept and f.digest not in swept  # the tree keeps f
            assert await keep.unpin(tree.digest) is True
            assert tree.digest in (await keep.gc(grace_s=0, dry_run=True)).swept
            with pytest.raises(NotFound):
                await keep.get(hash_bytes(b"absent"))

    asyncio.run(main())


def test_async_put_does_not_block_the_event_loop(project: Path) -> None:
    data = os.urandom(64 * 1024 * 1024)

    async def main() -> int:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        async with datakeep.open_async(project) as keep:
            task = asyncio.create_task(ticker())
            await keep.put(data)
            done.set()
            await task
        return ticks

    # a put that blocked the loop would let the ticker run once at most
    assert asyncio.run(main()) >= 5


def test_thousand_concurrent_async_puts(project: Path) -> None:
    async def main() -> set[str]:
        async with datakeep.open_async(project) as keep:
            results = await asyncio.gather(
                *(
                    keep.put(f"record {i % 700}".encode(), tags={"i": str(i % 700)})
                    for i in range(1000)
                )
            )
            page = await keep.find(limit=1000)
            assert len(page.items) == 700
            return {r.digest for r in results}

    digests = asyncio.run(main())
    assert len(digests) == 700
    with datakeep.open(project) as keep:
        assert keep.verify_many().ok


def test_async_corruption_raises(project: Path) -> None:
    async def main() -> None:
        async with datakeep.open_async(project) as keep:
            c = await keep.put(b"fine")
            damage(blob_path(keep.keep, c.digest), b"fake")
            with pytest.raises(IntegrityError):
                await keep.get(c.digest)

    asyncio.run(main())
