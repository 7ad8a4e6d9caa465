"""``put(data, expect="sha256:...")``: the caller's digest checked in the same pass, nothing
stored on a mismatch, and kept as an alias that every lookup understands, until gc takes
the content (and the alias with it)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

import datakeep
from datakeep.digest import hash_bytes
from datakeep.errors import IntegrityError, InvalidDigest, NotFound, UnknownAlgorithm
from datakeep.index import aliases
from datakeep.keep import Keep

from .conftest import blob_path

# Two different 128-byte blocks with the same MD5 (Wang et al., 2004; published by
# P. Selinger, https://www.mscs.dal.ca/~selinger/md5collision/)
COLLIDING = (
    bytes.fromhex(
        "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f89"
        "55ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5b"
        "d8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
        "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
    ),
    bytes.fromhex(
        "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f89"
        "55ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5b"
        "d8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
        "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
    ),
)
LARGE = 5 << 20  # above SMALL_FILE: a file this size is copied in the kernel


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def alias_rows(keep: Keep) -> int:
    with keep.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(aliases)).scalar_one())


def stored_nothing(keep: Keep) -> None:
    """No content, no alias, no blob, no orphan: as if the put never happened."""
    assert keep.find().items == []
    assert alias_rows(keep) == 0
    assert [k for k in keep.store.blob_keys() if not k.startswith(".")] == []
    assert keep.fsck().orphans == []


def test_put_bytes_with_a_sha256_is_found_by_it(keep: Keep, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    c = keep.put(data, tags={"k": "v"}, expect=sha256(data))
    assert c.digest == hash_bytes(data)  # named by the keep's own digest, as always
    alias = sha256(data)
    assert keep.aliases(c.digest) == [alias]
    assert keep.aliases(alias) == [alias]
    assert keep.get(alias) == data
    assert keep.exists(alias)
    assert keep.info(alias) == keep.info(c.digest)
    with keep.open(alias) as reader:
        assert reader.read() == data
    assert b"".join(keep.stream(alias, 4096)) == data
    assert b"".join(keep.stream(alias, verify_first=False)) == data
    keep.export(alias, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert keep.verify(alias).digest == c.digest
    # tags and pins go to the content itself
    keep.tag(alias, {"owner": "ana"})
    assert keep.info(c.digest).tags == {"k": "v", "owner": "ana"}
    assert keep.untag(alias, "k") == 1
    keep.pin(alias)
    assert keep.pins() == [c.digest]
    assert keep.unpin(alias) is True
    # an alias nothing was put with finds nothing
    other = sha256(b"never stored")
    assert not keep.exists(other)
    with pytest.raises(NotFound):
        keep.get(other)
    with pytest.raises(NotFound):
        keep.info(other)


def test_md5_stream_and_file_expectations(keep: Keep, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    s = keep.put_stream(iter([data[:1000], data[1000:]]), expect=md5(data))
    assert keep.get(md5(data)) == data and keep.aliases(s.digest) == [md5(data)]
    # the same content again with another name: both aliases kept, one content
    again = keep.put_stream(io.BytesIO(data), expect=sha256(data))
    assert again.digest == s.digest
    assert keep.aliases(s.digest) == sorted([md5(data), sha256(data)])
    keep.put(data, expect=sha256(data))  # the same alias again: still one row
    assert alias_rows(keep) == 2
    small = tmp_path / "small"
    small.write_bytes(b"small file")
    f = keep.put_file(small, expect=sha256(b"small file"))
    assert keep.get(sha256(b"small file")) == b"small file" == keep.get(f.digest)
    large = tmp_path / "large"
    large.write_bytes(os.urandom(LARGE))
    g = keep.put_file(large, expect=md5(large.read_bytes()))
    assert keep.info(md5(large.read_bytes())).digest == g.digest
    assert keep.get(md5(large.read_bytes())) == large.read_bytes()


def test_an_expectation_in_the_keeps_own_algorithm_is_checked_not_aliased(keep: Keep) -> None:
    data = b"own algorithm"
    c = keep.put(data, expect=hash_bytes(data))
    assert keep.aliases(c.digest) == [] and alias_rows(keep) == 0
    with pytest.raises(IntegrityError, match="not the expected"):
        keep.put(b"other bytes", expect=hash_bytes(data))
    assert [i.digest for i in keep.find().items] == [c.digest]


def test_a_sha256_keep_checks_a_sha256_expectation_directly(tmp_path: Path) -> None:
    with datakeep.init(tmp_path, algorithm="sha256") as keep:
        c = keep.put(b"x", expect=sha256(b"x"))
        assert c.digest == sha256(b"x") and keep.aliases(c.digest) == []
        with pytest.raises(IntegrityError):
            keep.put(b"y", expect=sha256(b"x"))
        d = keep.put(b"z", expect=md5(b"z"))  # another algorithm is an alias here too
        assert keep.get(md5(b"z")) == b"z" and keep.aliases(d.digest) == [md5(b"z")]


def _stream(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i : i + 65536]


def test_a_mismatch_stores_nothing_bytes_stream_file(keep: Keep, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    wrong = sha256(b"something else")
    with pytest.raises(IntegrityError, match=f"hashes to {sha256(data)}, not the expected"):
        keep.put(data, expect=wrong)
    with pytest.raises(IntegrityError):
        keep.put_stream(_stream(data), expect=wrong)
    with pytest.raises(IntegrityError):
        keep.put_stream(io.BytesIO(data), expect=md5(b"something else"))
    small = tmp_path / "small"
    small.write_bytes(data)
    large = tmp_path / "large"
    large.write_bytes(os.urandom(LARGE))
    for path in (small, large):
        with pytest.raises(IntegrityError):
            keep.put_file(path, expect=wrong)
    stored_nothing(keep)


def test_a_mismatch_links_nothing(keep: Keep, tmp_path: Path) -> None:
    path = tmp_path / "linked"
    path.write_bytes(os.urandom(LARGE))
    mode = path.stat().st_mode
    for link in ("hardlink", "auto"):
        with pytest.raises(IntegrityError):
            keep.put_file(path, link=link, expect=md5(b"not it"))
    assert path.stat().st_mode == mode and path.stat().st_nlink == 1  # untouched
    stored_nothing(keep)
    c = keep.put_file(path, link="hardlink", expect=md5(path.read_bytes()))
    assert keep.get(md5(path.read_bytes())) == path.read_bytes()
    assert path.stat().st_nlink == 2 and keep.aliases(c.digest) == [md5(path.read_bytes())]


def test_a_mismatch_on_content_already_kept_adds_nothing(keep: Keep) -> None:
    data = b"already kept"
    c = keep.put(data, tags={"a": "1"})
    with pytest.raises(IntegrityError):
        keep.put(data, tags={"b": "2"}, expect=sha256(b"other"))
    assert keep.info(c.digest).tags == {"a": "1"}
    assert keep.aliases(c.digest) == [] and not keep.exists(sha256(b"other"))
    # a later correct expectation names the content kept before
    assert keep.put(data, expect=sha256(data)).digest == c.digest
    assert keep.get(sha256(data)) == data


@pytest.mark.parametrize(
    ("expect", "error"),
    [
        ("sha256:xyz", InvalidDigest),
        ("sha256", InvalidDigest),
        ("sha256:" + "A" * 64, InvalidDigest),  # upper-case hex
        ("md5:" + "0" * 64, InvalidDigest),  # a SHA-256's length for MD5
        ("", InvalidDigest),
        (b"sha256:" + b"0" * 64, InvalidDigest),  # bytes, not a string
        ("sha1:" + "0" * 40, UnknownAlgorithm),
        ("crc32:00000000", UnknownAlgorithm),
    ],
)
def test_a_malformed_expectation_is_refused_before_anything_is_read(
    keep: Keep, tmp_path: Path, expect: object, error: type[Exception]
) -> None:
    consumed: list[bytes] = []

    def source() -> Iterator[bytes]:
        consumed.append(b"read")
        yield b"data"

    (tmp_path / "f").write_bytes(b"data")
    with pytest.raises(error):
        keep.put(b"data", expect=expect)  # type: ignore[arg-type]
    with pytest.raises(error):
        keep.put_stream(source(), expect=expect)  # type: ignore[arg-type]
    with pytest.raises(error):
        keep.put_file(tmp_path / "f", expect=expect)  # type: ignore[arg-type]
    assert consumed == []
    stored_nothing(keep)


def test_lookups_by_a_malformed_alias_are_refused(keep: Keep) -> None:
    with pytest.raises(InvalidDigest):
        keep.get("sha256:nothex")
    with pytest.raises(UnknownAlgorithm):
        keep.exists("sha1:" + "0" * 40)
    with pytest.raises(InvalidDigest):
        keep.aliases("md5:123")


def test_md5_collision_never_picks_one_silently(keep: Keep) -> None:
    first, second = COLLIDING
    assert first != second and md5(first) == md5(second)
    a = keep.put(first, expect=md5(first))
    assert keep.get(md5(first)) == first
    b = keep.put(second, expect=md5(second))  # genuinely that MD5: accepted too
    assert a.digest != b.digest
    assert keep.exists(md5(first))
    for lookup in (keep.get, keep.info, keep.open, keep.aliases):
        with pytest.raises(IntegrityError, match="names more than one content") as caught:
            lookup(md5(first))
        assert a.digest in str(caught.value) and b.digest in str(caught.value)
    with pytest.raises(IntegrityError, match="collision"):
        keep.export(md5(first), "/nonexistent/never-written")
    # each stays reachable by its own digest and its SHA-256
    assert keep.get(a.digest) == first and keep.get(b.digest) == second
    keep.put(second, expect=sha256(second))
    assert keep.get(sha256(second)) == second
    # once one of them goes, the alias names the other alone again
    keep.tag(a.digest, {"keep": "yes"})
    assert keep.gc(grace_s=0).swept == [b.digest]
    assert keep.get(md5(first)) == first
    assert not keep.exists(sha256(second))


def test_gc_takes_the_alias_with_its_content(keep: Keep) -> None:
    kept = keep.put(b"tagged", tags={"keep": "1"}, expect=sha256(b"tagged"))
    gone = keep.put(b"untagged", expect=sha256(b"untagged"))
    keep.put(b"untagged", expect=md5(b"untagged"))
    assert alias_rows(keep) == 3
    # an alias is a name, not a root: it does not keep its content alive
    report = keep.gc(grace_s=0)
    assert report.swept == [gone.digest]
    assert keep.aliases(kept.digest) == [sha256(b"tagged")]
    assert alias_rows(keep) == 1, "an alias row outlived its content"
    assert not keep.exists(sha256(b"untagged")) and not keep.exists(md5(b"untagged"))
    with pytest.raises(NotFound):
        keep.get(sha256(b"untagged"))
    # put again, the content and its name come back together
    keep.put(b"untagged", expect=sha256(b"untagged"))
    assert keep.get(sha256(b"untagged")) == b"untagged"


def test_fsck_repair_index_forgets_the_alias_of_a_lost_blob(keep: Keep) -> None:
    data = os.urandom(100_000)
    c = keep.put(data, expect=sha256(data))
    blob_path(keep, c.digest).unlink()
    report = keep.fsck(repair_index=True)
    assert c.digest in report.missing
    assert not keep.exists(sha256(data)) and alias_rows(keep) == 0
    keep.put(data, expect=sha256(data))
    assert keep.get(sha256(data)) == data


def test_a_lost_blob_named_by_its_alias_comes_from_a_mirror(keep: Keep, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    c = keep.put(data, tags={"k": "v"}, expect=sha256(data))
    keep.add_remote("mirror", str(tmp_path / "mirror"))
    keep.push("mirror")
    blob_path(keep, c.digest).unlink()
    told: list[str] = []
    keep.on_fallback = told.append
    assert keep.get(sha256(data)) == data
    assert b"".join(keep.stream(sha256(data))) == data
    keep.export(sha256(data), tmp_path / "restored")
    assert (tmp_path / "restored").read_bytes() == data
    assert told and all(c.digest in line for line in told)


def test_async_twins_with_expect(tmp_path: Path, index_url: str | None) -> None:
    datakeep.init(tmp_path, index=index_url).close()
    data = os.urandom(150_000)
    (tmp_path / "f").write_bytes(data)

    async def chunks() -> AsyncIterator[bytes]:
        for part in _stream(data):
            await asyncio.sleep(0)
            yield part

    async def main() -> None:
        async with datakeep.open_async(tmp_path) as akeep:
            c = await akeep.put(data, expect=sha256(data))
            assert await akeep.get(sha256(data)) == data
            assert await akeep.aliases(c.digest) == [sha256(data)]
            s = await akeep.put_stream(chunks(), expect=md5(data))
            assert s.digest == c.digest
            f = await akeep.put_file(tmp_path / "f", expect=sha256(data))
            assert f.digest == c.digest
            assert (await akeep.info(md5(data))).digest == c.digest
            assert await akeep.exists(md5(data))
            got = b"".join([chunk async for chunk in akeep.stream(md5(data))])
            assert got == data
            reader = await akeep.open_reader(sha256(data))
            async with reader:
                assert await reader.read() == data
            await akeep.export(sha256(data), tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == data
            with pytest.raises(IntegrityError):
                await akeep.put(b"other", expect=sha256(data))
            with pytest.raises(IntegrityError):
                await akeep.put_stream(chunks(), expect=sha256(b"other"))
            with pytest.raises(IntegrityError):
                await akeep.put_file(tmp_path / "f", expect=md5(b"other"))
            with pytest.raises(InvalidDigest):
                await akeep.put(data, expect="sha256:short")
            assert [i.digest for i in (await akeep.find()).items] == [c.digest]
            assert await akeep.aliases(c.digest) == sorted([md5(data), sha256(data)])

    asyncio.run(main())
