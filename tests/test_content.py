from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import datakeep
from datakeep.content import INLINE_MAX, key_of_pointer, pointer_of
from datakeep.digest import hash_bytes
from datakeep.errors import (
    IntegrityError,
    InvalidDigest,
    InvalidInput,
    InvalidPath,
    LinkUnsupported,
    NotFound,
    UnknownAlgorithm,
)
from datakeep.keep import Keep

from .conftest import blob_path, corrupt_inline, damage


def test_put_get_roundtrip_and_digest(keep: Keep) -> None:
    c = keep.put(b"hello world", tags={"kind": "raw"})
    assert c.digest == hash_bytes(b"hello world", "blake3")
    assert c.size == 11 and c.kind == "blob" and c.tags == {"kind": "raw"}
    assert keep.get(c.digest) == b"hello world"
    assert keep.exists(c.digest)
    assert keep.info(c.digest) == c


def test_identical_content_is_stored_once_never_refused(keep: Keep) -> None:
    a = keep.put(b"same bytes", tags={"run": "1"})
    b = keep.put(b"same bytes", tags={"run": "2"})
    c = keep.put_stream([b"same ", b"bytes"])
    assert a.digest == b.digest == c.digest
    assert keep.info(a.digest).tags == {"run": "2"}  # a tag has one value; the last wins
    files = [p for p in (keep.path / "objects").rglob("*") if p.is_file()]
    assert len(files) == 1


def test_empty_content(keep: Keep) -> None:
    c = keep.put(b"")
    assert keep.get(c.digest) == b""
    assert keep.put_stream([]).digest == c.digest
    assert list(keep.stream(c.digest)) == []


def test_put_stream_from_file_object_and_iterable(keep: Keep) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    a = keep.put_stream(io.BytesIO(data))
    b = keep.put_stream(data[i : i + 65536] for i in range(0, len(data), 65536))
    assert a.digest == b.digest == hash_bytes(data)
    assert b"".join(keep.stream(a.digest, 100_000)) == data
    with keep.open(a.digest) as reader:
        assert reader.read(10) == data[:10]
        assert reader.read() == data[10:]


def test_put_file_large_and_small(keep: Keep, tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"s" * 100)
    large.write_bytes(os.urandom(6 * 1024 * 1024))
    for path in (small, large):
        c = keep.put_file(path)
        assert keep.get(c.digest) == path.read_bytes()


def test_put_file_hardlink_shares_the_inode_and_protects_it(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(10_000))
    c = keep.put_file(src, link="hardlink")
    assert blob_path(keep, c.digest).stat().st_ino == src.stat().st_ino
    assert src.stat().st_mode & 0o222 == 0  # an in-place edit can no longer corrupt the store
    assert keep.get(c.digest) == src.read_bytes()


def test_put_file_auto_falls_back_to_a_working_link(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"auto" * 1000)
    c = keep.put_file(src, link="auto")
    assert keep.get(c.digest) == b"auto" * 1000
    assert keep.verify(c.digest) == c


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem")
@pytest.mark.parametrize("size", [4000, 6 * 1024 * 1024])
def test_put_file_auto_across_filesystems_stores_a_full_copy(
    keep: Keep, tmp_path: Path, size: int
) -> None:
    # the file is hashed for a link first; when no link can be made it must be read
    # again from the start, not stored from where the hashing left off
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        src = Path(elsewhere) / "data.bin"
        data = os.urandom(size)
        src.write_bytes(data)
        c = keep.put_file(src, link="auto")
        assert c.size == size
        assert keep.get(c.digest) == data
        assert blob_path(keep, c.digest).stat().st_ino != src.stat().st_ino


def test_put_file_refuses_a_file_changed_after_it_was_scanned(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"first")
    scanned = src.stat()
    src.write_bytes(b"second, longer")
    with pytest.raises(InvalidInput, match="changed while it was being stored"):
        keep.store.write_file(src, expected=scanned)
    replaced = tmp_path / "replacement"
    replaced.write_bytes(b"second, longer")
    scanned = src.stat()
    os.replace(replaced, src)  # same size, another file
    with pytest.raises(InvalidInput, match="changed while it was being stored"):
        keep.store.write_file(src, expected=scanned)
    assert keep.store.write_file(src, expected=src.stat()).size == len(b"second, longer")


def test_put_file_of_a_fifo_is_refused_without_waiting_for_a_writer(
    keep: Keep, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvalidPath, match="not a regular file"):
        keep.put_file(fifo)


def test_find_by_tags_with_keyset_paging(keep: Keep) -> None:
    digests = sorted(
        keep.put(f"item {i}".encode(), tags={"set": "a", "n": str(i % 2)}).digest for i in range(25)
    )
    keep.put(b"other", tags={"set": "b"})
    seen: list[str] = []
    after = None
    while True:
        page = keep.find({"set": "a"}, limit=10, after=after)
        seen += [c.digest for c in page.items]
        # content arriving between pages never makes a page skip or repeat an item
        keep.put(os.urandom(8), tags={"set": "a-late"})
        if page.next is None:
            break
        after = page.next
    assert seen == digests
    odd = keep.find({"set": "a", "n": "1"}, limit=100).items
    assert len(odd) == 12 and all(c.tags["n"] == "1" for c in odd)
    assert keep.find({"set": "none"}).items == []
    with pytest.raises(InvalidInput):
        keep.find(limit=0)


def test_untag_removes_only_that_tag(keep: Keep) -> None:
    c = keep.put(b"x", tags={"a": "1", "b": "2", "c": "3"})
    assert keep.untag(c.digest, "b") == 1
    assert keep.info(c.digest).tags == {"a": "1", "c": "3"}
    keep.tag(c.digest, {"d": "4"})
    assert keep.info(c.digest).tags == {"a": "1", "c": "3", "d": "4"}
    assert keep.untag(c.digest, "nope") == 0


@pytest.mark.parametrize("bad", ["nocolon", "blake3:xyz", "blake3:" + "A" * 64, "blake3:ab"])
def test_malformed_digest_is_rejected(keep: Keep, bad: str) -> None:
    with pytest.raises(InvalidDigest):
        keep.get(bad)


def test_unknown_algorithm(keep: Keep, tmp_path: Path) -> None:
    with pytest.raises(UnknownAlgorithm):
        keep.get("sha1:" + "a" * 40)
    with pytest.raises(UnknownAlgorithm):
        datakeep.init(tmp_path / "other", algorithm="crc32")
    assert not (tmp_path / "other" / ".datakeep").exists()


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_other_algorithms(tmp_path: Path, algorithm: str, index_url: str | None) -> None:
    with datakeep.init(tmp_path, algorithm=algorithm, index=index_url) as keep:
        c = keep.put(b"abc")
        assert c.digest == hash_bytes(b"abc", algorithm)
        assert keep.get(c.digest) == b"abc"


def test_missing_content_is_one_not_found(keep: Keep) -> None:
    absent = hash_bytes(b"never stored")
    for call in (keep.get, keep.info, keep.open, keep.verify):
        with pytest.raises(NotFound):
            call(absent)
    with pytest.raises(KeyError):
        keep.get(absent)
    with pytest.raises(FileNotFoundError):
        list(keep.stream(absent))
    assert not keep.exists(absent)


def test_bad_input_changes_nothing(keep: Keep, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        keep.put_file(tmp_path / "missing")
    with pytest.raises(InvalidInput):
        keep.put("text, not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        keep.put(b"x", tags={"": "empty name"})
    with pytest.raises(InvalidInput):
        keep.put(b"x", tags={"k": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        keep.put_stream(["not", "bytes"])  # type: ignore[list-item]
    assert keep.find().items == []
    assert [p for p in (keep.path / "objects").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("read", ["get", "stream", "open", "export", "verify"])
def test_corrupted_blob_is_caught_on_every_read_path(keep: Keep, tmp_path: Path, read: str) -> None:
    data = os.urandom(2 * 1024 * 1024)
    c = keep.put(data)
    damaged = bytearray(data)
    damaged[1_500_000] ^= 0xFF
    damage(blob_path(keep, c.digest), bytes(damaged))
    with pytest.raises(IntegrityError, match="corrupted"):
        if read == "get":
            keep.get(c.digest)
        elif read == "stream":
            list(keep.stream(c.digest))
        elif read == "open":
            with keep.open(c.digest) as f:
                f.read()
        elif read == "export":
            keep.export(c.digest, tmp_path / "out.bin")
        else:
            keep.verify(c.digest)
    assert not (tmp_path / "out.bin").exists()
    report = keep.verify_many()
    assert [p.digest for p in report.problems] == [c.digest]


def test_reader_never_hands_out_the_last_bad_chunk(keep: Keep) -> None:
    size = 3 * 1024 * 1024
    c = keep.put(b"a" * size)
    damage(blob_path(keep, c.digest), b"a" * (size - 1) + b"b")
    with keep.open(c.digest) as f:
        assert f.read(50) == b"a" * 50  # bytes before the end cannot be known bad yet
        with pytest.raises(IntegrityError):
            f.read()


@pytest.mark.parametrize("stored", [b"short", b"0123456789" * 3])
def test_truncated_or_extended_blob(keep: Keep, stored: bytes) -> None:
    c = keep.put(b"0123456789" * 2)
    damage(blob_path(keep, c.digest), stored)
    with pytest.raises(IntegrityError):
        keep.get(c.digest)


def test_missing_blob_behind_the_index_is_reported(keep: Keep) -> None:
    c = keep.put(b"soon gone")
    blob_path(keep, c.digest).unlink()
    with pytest.raises(NotFound):
        keep.get(c.digest)
    report = keep.verify_many()
    assert not report.ok and "missing" in report.problems[0].error


def test_moved_keep_directory_stays_readable(tmp_path: Path, index_url: str | None) -> None:
    with datakeep.init(tmp_path / "here", index=index_url) as keep:
        blob = keep.put(b"portable", tags={"t": "1"})
        (tmp_path / "here" / "d").mkdir()
        (tmp_path / "here" / "d" / "f").write_text("file")
        tree = keep.put_tree(tmp_path / "here" / "d")
    shutil.move(tmp_path / "here", tmp_path / "there")
    with datakeep.open(tmp_path / "there") as moved:
        assert moved.get(blob.digest) == b"portable"
        assert moved.verify_many().ok
        moved.export(tree.digest, tmp_path / "restored")
    assert (tmp_path / "restored" / "f").read_text() == "file"


def test_open_finds_the_keep_upward_and_honours_datakeep_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datakeep.init(tmp_path / "proj").close()
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    with datakeep.open(deep) as keep:
        assert keep.path == tmp_path / "proj" / ".datakeep"
    with pytest.raises(NotFound):
        datakeep.open(tmp_path)
    monkeypatch.setenv("DATAKEEP_DIR", str(tmp_path / "proj"))
    with datakeep.open(tmp_path) as keep:
        assert keep.path == (tmp_path / "proj" / ".datakeep").resolve()


def test_init_twice_is_refused_and_keeps_the_first(tmp_path: Path) -> None:
    with datakeep.init(tmp_path) as keep:
        c = keep.put(b"first")
    with pytest.raises(datakeep.AlreadyExists):
        datakeep.init(tmp_path, algorithm="sha256")
    with datakeep.open(tmp_path) as keep:
        assert keep.algorithm == "blake3" and keep.get(c.digest) == b"first"


def test_small_contents_kept_in_the_index_behave_like_any_content(
    keep: Keep, tmp_path: Path
) -> None:
    payloads = [b'{"n": 1}', b'{"n": 2}', b'{"n": 1}', b""]
    digests = keep.store.put_inline(payloads)
    assert digests == [hash_bytes(p) for p in payloads]
    assert len(keep.find(limit=10).items) == 3  # the duplicate once
    assert keep.get(digests[0]) == b'{"n": 1}' and keep.get(digests[3]) == b""
    with keep.open(digests[1]) as reader:
        assert reader.read() == b'{"n": 2}'
    assert b"".join(keep.stream(digests[1])) == b'{"n": 2}'
    keep.export(digests[0], tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_bytes() == b'{"n": 1}'
    with pytest.raises(LinkUnsupported):
        keep.export(digests[0], tmp_path / "link.json", link="hardlink")
    # a put of the same bytes dedups to the inline row; the file it wrote is removed
    assert keep.put(b'{"n": 2}').digest == digests[1]
    report = keep.fsck()
    assert report.ok and report.orphans == []
    assert not keep.store.backend.path_of(keep.store.router(digests[1], {})).exists()  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput):
        keep.store.put_inline([b"x" * (INLINE_MAX + 1)])

    corrupt_inline(keep, digests[1], b'{"n": 3}')
    for read in (keep.get, keep.verify, lambda d: keep.export(d, tmp_path / "bad.json")):
        with pytest.raises(IntegrityError):
            read(digests[1])
    assert not (tmp_path / "bad.json").exists()
    report = keep.fsck(repair_index=True)
    assert [p.digest for p in report.corrupted] == [digests[1]]
    # the bad inline bytes are set aside and forgotten; a put stores them again
    assert [line.split()[0] for line in report.repairs] == ["quarantined", "forgot"]
    with pytest.raises(NotFound):
        keep.get(digests[1])
    assert keep.put(b'{"n": 2}').digest == digests[1]
    assert keep.get(digests[1]) == b'{"n": 2}' and keep.fsck().ok
    assert sorted(keep.gc(grace_s=0).swept) == sorted({*digests})


@pytest.mark.parametrize("key", ["blake3/ab/cdef", "route/blake3/00/ff", "packs/0a1b.pack#17+4096"])
def test_pointers_round_trip(key: str) -> None:
    pointer = pointer_of(key)
    assert key_of_pointer(pointer) == key
    assert json.loads(pointer) == (
        {"key": key}
        if "#" not in key
        else {"pack": "packs/0a1b.pack", "offset": 17, "length": 4096}
    )


def test_pointers_written_by_any_json_encoder_are_read() -> None:
    reordered = json.dumps({"length": 5, "offset": 3, "pack": "packs/x.pack"})
    assert key_of_pointer(reordered) == "packs/x.pack#3+5"
    assert key_of_pointer(json.dumps({"key": 'odd"key'}, indent=1)) == 'odd"key'
    assert key_of_pointer('{"pack": "packs/x.pack", "offset": 3, "length": 5 }') == (
        "packs/x.pack#3+5"
    )


def test_a_small_tree_recorded_through_the_driver_is_a_tree(keep: Keep, tmp_path: Path) -> None:
    from datakeep.index.direct import direct_connection
    from datakeep.trees.inline import read_small_tree

    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "a.txt").write_text("a")
    small = read_small_tree(keep.store, tmp_path / "small")
    assert small is not None
    store = keep.store
    with direct_connection(store.db) as direct, store.leases.shared(on=direct):
        tree = direct.transact("recording", lambda d: small.record(store, d.execute))
    assert keep.info(tree).kind == "tree"
    assert tree == keep.put_tree(tmp_path / "small").digest


def test_an_empty_blob_location_is_refused_not_taken_as_here(tmp_path: Path) -> None:
    """``Path("")`` is the current directory: an empty --blobs never means it."""
    with pytest.raises(InvalidInput, match="empty location"):
        datakeep.init(tmp_path, blobs="")
    assert not (tmp_path / ".datakeep").exists()
    with datakeep.init(tmp_path) as keep, pytest.raises(InvalidInput, match="empty location"):
        keep.add_remote("nowhere", " ")
