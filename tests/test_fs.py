"""datakeep:// as an fsspec filesystem: paths, listings, verified whole and ranged reads,
refusals, tags, workspace snapshots and file stores, on both indexes and on S3."""

from __future__ import annotations

import os
import pickle
import random
import time
from pathlib import Path

import fsspec
import pytest

import datakeep
from datakeep.digest import hash_bytes
from datakeep.errors import IntegrityError, InvalidInput, InvalidPath, NotFound
from datakeep.files import FileStore
from datakeep.fs import KeepFileSystem, ReadOnlyError
from datakeep.fs.blobs import CHUNK, SMALL
from datakeep.keep import Keep
from datakeep.trees import TreeEntry, encode_tree
from datakeep.workspaces import Workspace

from .conftest import blob_path, damage, damage_packed
from .s3server import S3Endpoint, s3  # noqa: F401  (the session fixture)

BIG = random.Random(7).randbytes(SMALL + 3 * CHUNK + 123)  # ranged reads go by chunks


def _directory(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "data.csv").write_text("a,b\n1,2\n3,4\n")
    (root / "sub" / "nested.csv").write_text("x\n10\n")
    (root / "sub" / "deeper" / "z.txt").write_text("zed")
    (root / "big.bin").write_bytes(BIG)
    os.symlink("sub/nested.csv", root / "alias.csv")
    os.symlink("sub", root / "linked")
    return root


@pytest.fixture
def tree(keep: Keep, tmp_path: Path) -> str:
    return keep.put_tree(_directory(tmp_path / "data"), tags={"stage": "raw"}).digest


@pytest.fixture
def fs(keep: Keep) -> KeepFileSystem:
    return KeepFileSystem(keep=keep)


def test_registered_under_datakeep_and_keep_found_from_cwd(
    keep: Keep, tree: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fsspec.get_filesystem_class("datakeep") is KeepFileSystem
    with fsspec.open(f"datakeep://{tree}/data.csv", "rt", keep=keep.path.parent) as f:
        assert f.read() == "a,b\n1,2\n3,4\n"
    monkeypatch.chdir(keep.path.parent / "..")
    with pytest.raises(NotFound):
        fsspec.filesystem("datakeep")  # no keep above tmp_path
    monkeypatch.chdir(keep.path.parent)
    found = fsspec.filesystem("datakeep")
    assert found.cat(f"datakeep://{tree}/sub/nested.csv") == b"x\n10\n"
    assert found is fsspec.filesystem("datakeep", keep=str(keep.path.parent))  # one instance
    # what dask and friends do: a filesystem travels by its storage options
    copied = pickle.loads(pickle.dumps(found))
    assert copied.cat(f"{tree}/data.csv") == b"a,b\n1,2\n3,4\n"


def test_listings_of_a_tree(fs: KeepFileSystem, tree: str) -> None:
    assert fs.ls(tree, detail=False) == [
        f"{tree}/{n}" for n in ["alias.csv", "big.bin", "data.csv", "empty", "sub"]
    ]
    info = fs.info(f"datakeep://{tree}/data.csv")
    assert info["type"] == "file" and info["size"] == 12 and info["mode"] == 0o644
    assert info["digest"] == hash_bytes(b"a,b\n1,2\n3,4\n")
    assert fs.info(tree)["type"] == "directory" and fs.info(tree)["digest"] == tree
    assert fs.isdir(f"{tree}/empty") and fs.ls(f"{tree}/empty") == []
    assert fs.isfile(f"{tree}/sub/nested.csv") and not fs.isdir(f"{tree}/sub/nested.csv")
    assert fs.exists(f"{tree}/sub/deeper/z.txt") and not fs.exists(f"{tree}/nope.csv")
    assert fs.find(f"{tree}/sub") == [f"{tree}/sub/deeper/z.txt", f"{tree}/sub/nested.csv"]
    assert fs.glob(f"datakeep://{tree}/**/*.csv") == [
        f"{tree}/alias.csv",
        f"{tree}/data.csv",
        f"{tree}/sub/nested.csv",
    ]
    walked = {root: (dirs, files) for root, dirs, files in fs.walk(tree)}
    assert walked[f"{tree}/sub"] == (["deeper"], ["nested.csv"])
    # links inside the tree are followed: a link to a file reads as the file, to a
    # directory as the directory (reached by its path; listings leave it out, since
    # links may loop)
    assert fs.cat(f"{tree}/alias.csv") == b"x\n10\n"
    assert fs.ls(f"{tree}/linked", detail=False) == [
        f"{tree}/linked/deeper",
        f"{tree}/linked/nested.csv",
    ]
    assert fs.ukey(f"{tree}/alias.csv") == hash_bytes(b"x\n10\n")


def test_blob_by_digest_and_unique_prefix(keep: Keep, fs: KeepFileSystem) -> None:
    # two blobs whose digests share their first six hex digits: a prefix that long is
    # ambiguous, a longer one is not
    seen: dict[str, bytes] = {}
    for i in range(1_000_000):
        data = f"blob {i}".encode()
        prefix = hash_bytes(data)[: len("blake3:") + 6]
        if prefix in seen:
            break
        seen[prefix] = data
    a, b = keep.put(seen[prefix]), keep.put(data)
    assert fs.cat(a.digest) == seen[prefix] and fs.cat(f"datakeep://{b.digest}") == data
    assert fs.info(a.digest)["type"] == "file" and fs.ls(a.digest, detail=False) == [a.digest]
    with pytest.raises(InvalidInput, match="names 2 contents"):
        fs.cat(prefix)
    longer = a.digest[: len("blake3:") + 12]
    assert fs.cat(longer) == seen[prefix]
    assert fs.cat(f"datakeep://{longer.partition(':')[2]}") == seen[prefix]  # as typed
    with pytest.raises(InvalidInput, match="prefix"):
        fs.cat(a.digest[: len("blake3:") + 5])
    with pytest.raises(NotFound):
        fs.cat(f"blake3:{'0' * 64}")
    with pytest.raises(NotFound):
        fs.cat("nothing-here")
    assert not fs.exists("nothing-here") and not fs.exists(f"blake3:{'0' * 64}")
    with pytest.raises(NotFound, match="not a directory"):
        fs.cat(f"{a.digest}/inside")


def test_whole_and_ranged_reads_match_the_bytes(keep: Keep, fs: KeepFileSystem, tree: str) -> None:
    path = f"{tree}/big.bin"
    assert fs.cat_file(path) == BIG
    assert fs.cat_file(path, 10, 20) == BIG[10:20]
    assert fs.cat_file(path, -100) == BIG[-100:]
    assert fs.cat_file(path, CHUNK - 5, 3 * CHUNK + 7) == BIG[CHUNK - 5 : 3 * CHUNK + 7]
    assert fs.cat_file(path, len(BIG) - 10, len(BIG) + 100) == BIG[-10:]
    assert fs.cat_file(f"{tree}/data.csv", 2, -2) == b"a,b\n1,2\n3,4\n"[2:-2]
    # long ranges are read without their edge chunks, which are read apart for the check
    for start, end in [(100, len(BIG) - 5), (CHUNK, len(BIG)), (0, len(BIG) - 1), (7, 3 << 20)]:
        assert fs.cat_file(path, start, end) == BIG[start:end]
    rng = random.Random(1)
    with fs.open(path) as f:
        assert f.seekable() and f.size == len(BIG)
        for _ in range(200):
            at = rng.randrange(len(BIG))
            f.seek(at)
            assert f.read(4096) == BIG[at : at + 4096]
        f.seek(-7, 2)
        assert f.read() == BIG[-7:] and f.tell() == len(BIG)
        f.seek(3)
        assert f.read(2 << 20) == BIG[3 : 3 + (2 << 20)] and f.tell() == 3 + (2 << 20)
    with pytest.raises(IsADirectoryError):
        fs.open(f"{tree}/sub")


def test_a_damaged_blob_raises_instead_of_returning_bytes(
    keep: Keep, fs: KeepFileSystem, tree: str
) -> None:
    big = hash_bytes(BIG)
    bad = bytearray(BIG)
    bad[len(BIG) // 2] ^= 1
    damage(blob_path(keep, big), bytes(bad))
    with pytest.raises(IntegrityError):
        fs.cat_file(f"{tree}/big.bin")
    # a range far from the damaged byte is refused too: the blob is verified whole first
    with pytest.raises(IntegrityError), fs.open(f"{tree}/big.bin") as f:
        f.read(100)
    small = hash_bytes(b"x\n10\n")
    damage_packed(keep, small, b"y\n10\n")
    with pytest.raises(IntegrityError):
        fs.cat(f"{tree}/sub/nested.csv")
    with pytest.raises(IntegrityError), fs.open(f"{tree}/alias.csv") as f:
        f.read(1)


def test_bytes_changed_after_verification_are_caught_by_their_chunk(
    keep: Keep, fs: KeepFileSystem, tree: str
) -> None:
    path = f"{tree}/big.bin"
    assert fs.cat_file(path, 0, 10) == BIG[:10]  # the blob is now verified and remembered
    bad = bytearray(BIG)
    bad[3 * CHUNK + 1] ^= 0xFF
    damage(blob_path(keep, hash_bytes(BIG)), bytes(bad))
    assert fs.cat_file(path, 0, 10) == BIG[:10]  # its chunk is intact
    with pytest.raises(IntegrityError, match="changed since"):
        fs.cat_file(path, 3 * CHUNK, 3 * CHUNK + 4)
    with pytest.raises(IntegrityError, match="changed since"):
        fs.cat_file(path, 5, len(BIG) - 5)  # a long range, the changed chunk inside it
    assert fs.cat_file(path, 4 * CHUNK + 1, len(BIG) - 1) == BIG[4 * CHUNK + 1 : -1]
    damage(blob_path(keep, hash_bytes(BIG)), BIG[: 2 * CHUNK])
    with pytest.raises(IntegrityError, match="truncated"):
        fs.cat_file(path, 3 * CHUNK, 3 * CHUNK + 4)


@pytest.mark.parametrize(
    "bad",
    [
        "{tree}/../{other}",
        "{tree}/sub/../data.csv",
        "{tree}//etc/passwd",
        "{tree}/./data.csv",
        "tag/stage=raw/../../{other}",
        "{tree}/sub/\x00",
    ],
)
def test_paths_leaving_their_root_are_refused(
    keep: Keep, fs: KeepFileSystem, tree: str, bad: str
) -> None:
    url = "datakeep://" + bad.format(tree=tree, other=keep.put(b"elsewhere").digest)
    for call in (fs.cat, fs.info, fs.ls, fs.open, fs.exists):
        with pytest.raises(InvalidPath):
            call(url)


def test_links_out_of_a_crafted_tree_are_refused(keep: Keep, fs: KeepFileSystem) -> None:
    # put_tree refuses such links; a manifest made by hand (or by another tool) has them
    def link(path: str, target: str) -> TreeEntry:
        return TreeEntry(path, "l", 0o777, len(target), keep.put(target.encode()).digest)

    ok = keep.put(b"ok").digest
    entries = [
        TreeEntry("ok.txt", "f", 0o644, 2, ok),
        link("escape", "../../../etc/passwd"),
        link("absolute", "/etc/passwd"),
        link("loop", "loop"),
        link("d/up", "../.."),
    ]
    written = keep.store.write_bytes(encode_tree(entries))
    keep.store.record([written], kind="tree")
    tree = written.digest
    assert fs.ls(tree, detail=False) == [f"{tree}/d", f"{tree}/ok.txt"]
    assert fs.ls(f"{tree}/d") == []  # only links leaving the tree were in it
    for name in ("escape", "absolute", "loop", "d/up", "d/up/etc/passwd"):
        with pytest.raises(InvalidPath):
            fs.cat(f"{tree}/{name}")


def test_writes_are_refused(fs: KeepFileSystem, tree: str) -> None:
    for call in (
        lambda: fs.open(f"{tree}/new.csv", "wb"),
        lambda: fs.open(f"{tree}/data.csv", "ab"),
        lambda: fs.pipe(f"{tree}/new.csv", b"x"),
        lambda: fs.rm(f"{tree}/data.csv"),
        lambda: fs.mkdir(f"{tree}/d"),
        lambda: fs.touch(f"{tree}/t"),
        lambda: fs.mv(f"{tree}/data.csv", f"{tree}/moved.csv"),
    ):
        with pytest.raises(ReadOnlyError, match="read-only"):
            call()
    assert isinstance(ReadOnlyError("x"), PermissionError)
    assert fs.cat(f"{tree}/data.csv") == b"a,b\n1,2\n3,4\n"


def test_tag_paths_name_the_newest_tagged_content(
    keep: Keep, fs: KeepFileSystem, tmp_path: Path
) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "t.csv").write_text("v\n1\n")
    first = keep.put_tree(tmp_path / "v1", tags={"dataset": "train"})
    time.sleep(0.01)
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "t.csv").write_text("v\n2\n")
    keep.put_tree(tmp_path / "v2", tags={"dataset": "train"})
    keep.put(b"a file", tags={"note": "a b/c"})
    assert fs.cat("datakeep://tag/dataset=train/t.csv") == b"v\n2\n"
    assert fs.cat(f"{first.digest}/t.csv") == b"v\n1\n"
    assert fs.cat("tag/note=a%20b%2Fc") == b"a file"
    listed = {i["name"]: i["type"] for i in fs.ls("tag")}
    assert listed == {"tag/dataset=train": "directory", "tag/note=a%20b%2Fc": "file"}
    assert fs.ls("", detail=False) == ["files", "tag", "ws"]
    with pytest.raises(NotFound):
        fs.cat("tag/dataset=test/t.csv")
    with pytest.raises(InvalidPath):
        fs.ls("tag/dataset")


def test_workspace_snapshots_by_tag_and_hash(keep: Keep, fs: KeepFileSystem) -> None:
    root = keep.path.parent
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("n\n1\n")
    with Workspace.init(root, "lab", keep=keep) as ws:
        ws.add_resource("data", "source-data", "data")
        v1 = ws.snapshot("v1")
        (root / "data" / "train.csv").write_text("n\n1\n2\n")
        ws.snapshot("v2")
    assert fs.cat("datakeep://ws/lab@v1/data/train.csv") == b"n\n1\n"
    assert fs.cat("ws/lab@v2/data/train.csv") == b"n\n1\n2\n"
    short = v1.partition(":")[2][:8]
    assert fs.cat(f"ws/lab@{short}/data/train.csv") == b"n\n1\n"
    assert fs.ls("ws/lab@v1", detail=False) == ["ws/lab@v1/data"]
    assert f"ws/lab@{v1}" in fs.ls("ws", detail=False)
    with pytest.raises(NotFound):
        fs.cat("ws/lab@v3/data/train.csv")
    with pytest.raises(NotFound, match="no resource"):
        fs.ls("ws/lab@v1/code")


def test_file_store_namespaces_as_directories(
    keep: Keep, fs: KeepFileSystem, tmp_path: Path
) -> None:
    assert fs.ls("files") == []
    source = tmp_path / "posterior.csv"
    source.write_text("p\n0.5\n")
    store = FileStore.create(keep, "O4")
    store.add_file("S230518h", "Prod0", source)
    store.add_file("S230518h", "Prod1", source, new_name="other.csv")
    assert fs.cat("datakeep://files/S230518h/Prod0/posterior.csv") == b"p\n0.5\n"
    assert fs.ls("files", detail=False) == ["files/S230518h"]
    assert fs.ls("files/S230518h", detail=False) == ["files/S230518h/Prod0", "files/S230518h/Prod1"]
    assert fs.find("files") == [
        "files/S230518h/Prod0/posterior.csv",
        "files/S230518h/Prod1/other.csv",
    ]
    with pytest.raises(NotFound):
        fs.info("files/S230518h/Prod2")
    with pytest.raises(InvalidPath):
        fs.cat("files/S230518h/Prod0/../Prod1/other.csv")


def test_s3_homed_keep_reads_ranges_verified(
    tmp_path: Path,
    index_url: str | None,
    s3: S3Endpoint,  # noqa: F811
) -> None:
    import obstore

    bucket = s3.new_bucket()
    with datakeep.init(
        tmp_path / "project", index=index_url, blobs=f"s3://{bucket}/keep", endpoint=s3.url
    ) as keep:
        tree = keep.put_tree(_directory(tmp_path / "data")).digest
        fs = KeepFileSystem(keep=keep)
        assert fs.cat(f"{tree}/data.csv") == b"a,b\n1,2\n3,4\n"
        assert (
            fs.cat_file(f"{tree}/big.bin", CHUNK + 1, 2 * CHUNK + 2)
            == BIG[CHUNK + 1 : 2 * CHUNK + 2]
        )
        with fs.open(f"{tree}/big.bin") as f:
            f.seek(len(BIG) - 50)
            assert f.read() == BIG[-50:]
        bad = bytearray(BIG)
        bad[CHUNK + 10] ^= 1
        obstore.put(keep.store.backend._store, keep.store.key_of(hash_bytes(BIG)), bytes(bad))  # type: ignore[attr-defined]
        with pytest.raises(IntegrityError):
            fs.cat_file(f"{tree}/big.bin", CHUNK, CHUNK + 20)
        assert fs.cat_file(f"{tree}/big.bin", 0, 20) == BIG[:20]  # its chunk is intact
        fs.blobs.forget(hash_bytes(BIG))  # verified whole again: now it fails as a whole
        with pytest.raises(IntegrityError):
            KeepFileSystem(keep=keep).cat_file(f"{tree}/big.bin", 0, 20)
