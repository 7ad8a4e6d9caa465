from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

import datakeep
from datakeep.content import PACKED_MAX, stored_as_file
from datakeep.content.packs import pack_member
from datakeep.errors import AlreadyExists, IntegrityError, InvalidPath, NotFound
from datakeep.keep import Keep
from datakeep.trees import TreeEntry, decode_tree, encode_tree, statcache, tree_members
from datakeep.trees import format as format_module

from .conftest import blob_path, count_reads, damage_packed


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(5000))
    (root / "sub" / "deeper" / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "private").write_text("secret")
    (root / "private").chmod(0o600)
    (root / "odd\nname\\with escapes é").write_text("odd")
    (root / "sub" / "link").symlink_to("../a.txt")
    (root / "dangling").symlink_to("sub/missing")


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Everything export must reproduce: type, mode and bytes (or link target) per path."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = ("l", 0, os.readlink(path).encode())
        elif path.is_dir():
            result[rel] = ("d", 0, b"")
        else:
            result[rel] = ("f", path.stat().st_mode & 0o777, path.read_bytes())
    return result


def test_tree_roundtrip_is_byte_exact_with_modes(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    tree = keep.put_tree(src, tags={"stage": "raw"})
    assert tree.kind == "tree" and tree.tags == {"stage": "raw"}
    keep.export(tree.digest, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(src)
    assert keep.put_tree(tmp_path / "out").digest == tree.digest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_same_directory_same_digest_anywhere(keep: Keep, tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name / "x").mkdir(parents=True)
        (tmp_path / name / "x" / "f").write_text("same")
    assert keep.put_tree(tmp_path / "one").digest == keep.put_tree(tmp_path / "two").digest


def test_hardlink_export_shares_blobs(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    tree = keep.put_tree(src)
    keep.export(tree.digest, tmp_path / "out", link="hardlink")
    big = tmp_path / "out" / "sub" / "deeper" / "big"
    assert big.stat().st_ino == blob_path(keep, keep.put_file(big).digest).stat().st_ino
    # a small file lives in a pack, with no file of its own to link: it is copied
    small = tmp_path / "out" / "sub" / "b.bin"
    assert small.stat().st_nlink == 1 and small.stat().st_mode & 0o777 == 0o644
    assert small.read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert snapshot(tmp_path / "out") == {
        path: (kind, 0o444 if path == "sub/deeper/big" else mode, data)
        for path, (kind, mode, data) in snapshot(src).items()
    }


def test_small_files_of_a_tree_share_packs(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    (src / "copy.bin").write_bytes((src / "sub" / "b.bin").read_bytes())  # stored once
    tree = keep.put_tree(src)
    keys = keep.store.keys_of(tree_members(keep.get(tree.digest), keep.algorithm))
    big = keep.put_file(src / "sub" / "deeper" / "big").digest
    assert stored_as_file(keys.pop(big))
    # five small files (one of them twice) and two link targets, in one pack
    packs = {_pack_of(key) for key in keys.values()}
    assert len(keys) == 7 and len(packs) == 1
    # a later tree packs only what the keep lacks
    (src / "new.txt").write_text("new")
    second = keep.put_tree(src)
    later = keep.store.keys_of(tree_members(keep.get(second.digest), keep.algorithm))
    assert {d: later[d] for d in keys} == keys
    new_pack = _pack_of(later[keep.put(b"new").digest])
    assert new_pack not in packs
    assert keep.store.backend.read(new_pack).count(b"new") == 1  # nothing else in it
    # a put of a packed content finds it there and leaves no blob file behind
    assert keep.put_file(src / "a.txt").digest in keys
    report = keep.fsck()
    assert report.ok and report.orphans == []
    keep.export(second.digest, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(src)


def _pack_of(key: str) -> str:
    member = pack_member(key)
    assert member is not None, f"{key} is not in a pack"
    return member.pack


def test_export_refuses_a_non_empty_destination(keep: Keep, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    tree = keep.put_tree(tmp_path / "src")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine").write_text("keep me")
    with pytest.raises(AlreadyExists):
        keep.export(tree.digest, tmp_path / "busy")
    assert (tmp_path / "busy" / "mine").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    keep.export(tree.digest, tmp_path / "empty")
    assert (tmp_path / "empty" / "f").read_text() == "x"


def test_export_of_a_corrupted_tree_is_all_or_nothing(keep: Keep, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    tree = keep.put_tree(src)
    victim = keep.put_file(src / "sub" / "b.bin").digest
    damage_packed(keep, victim, b"x" * 5000)
    with pytest.raises(IntegrityError):
        keep.export(tree.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "src"]


@pytest.fixture
def settled_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of :func:`make_tree` whose files count as settled for the stat cache
    although they were just written."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    src = tmp_path / "src"
    make_tree(src)
    return src


def test_unchanged_files_are_not_rehashed(
    keep: Keep, tmp_path: Path, settled_src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = settled_src
    first = keep.put_tree(src)
    hashed = count_reads(keep, monkeypatch)
    assert keep.put_tree(src).digest == first.digest
    assert hashed == []
    (src / "a.txt").write_text("changed")
    second = keep.put_tree(src)
    assert hashed == [src / "a.txt"]
    assert second.digest != first.digest
    keep.export(second.digest, tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "changed"


def test_racy_entries_are_rehashed(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("v1")
    keep.put_tree(src)  # f was modified less than RACY_NS before it was hashed
    hashed = count_reads(keep, monkeypatch)
    keep.put_tree(src)
    assert hashed == [src / "f"], "a racy entry must not be trusted"


def test_cached_digest_whose_blob_left_the_index_is_stored_again(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("content")
    (src / "g").write_text("other")
    keep.put_tree(src)
    f_digest = keep.put(b"content").digest
    with keep.db.write() as conn:  # as if gc had removed it (its pack stays for g)
        from datakeep.index import contents

        conn.execute(contents.delete().where(contents.c.digest == f_digest))
    (src / "g").write_text("other, changed")  # a new tree, so members are checked
    tree = keep.put_tree(src)
    assert keep.get(f_digest) == b"content"
    assert keep.verify_many().ok
    keep.export(tree.digest, tmp_path / "out")


def test_symlinks_that_escape_are_refused(keep: Keep, tmp_path: Path) -> None:
    for target in ("/etc/passwd", "../../outside", "./../x/../../y"):
        src = tmp_path / f"src{abs(hash(target))}"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "l").symlink_to(target)
        with pytest.raises(InvalidPath, match="outside"):
            keep.put_tree(src)
    # a chain of links that is harmless one by one but leaves the tree as a whole
    src = tmp_path / "chain"
    (src / "d").mkdir(parents=True)
    (src / "d" / "up").symlink_to("..")
    (src / "escape").symlink_to("d/up/..")
    with pytest.raises(InvalidPath):
        keep.put_tree(src)
    assert keep.find(kind="tree").items == []


def test_put_tree_bad_input(keep: Keep, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        keep.put_tree(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidPath):
        keep.put_tree(tmp_path / "file")
    src = tmp_path / "withfifo"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(InvalidPath, match="not a file"):
        keep.put_tree(src)


def test_keep_directory_inside_the_tree_is_skipped(keep: Keep) -> None:
    project = keep.path.parent
    (project / "data.txt").write_text("d")
    tree = keep.put_tree(project)
    paths = [e.path for e in decode_tree(keep.get(tree.digest))]
    assert paths == ["data.txt"]


def _manifest(*lines: str) -> bytes:
    return ("datakeep.tree@v1\n" + "".join(line + "\n" for line in lines)).encode()


D = "blake3:" + "a" * 64


@pytest.mark.parametrize(
    "manifest",
    [
        _manifest(f"f 644 1 {D} ../up"),
        _manifest(f"f 644 1 {D} /abs"),
        _manifest(f"f 644 1 {D} a//b"),
        _manifest(f"f 644 1 {D} b", f"f 644 1 {D} a"),  # unsorted
        _manifest(f"f 644 1 {D} a", f"f 644 1 {D} a"),  # duplicate
        _manifest(f"f 644 1 {D} a", f"f 644 1 {D} a/b"),  # beneath a file
        _manifest(f"l 0 1 {D} a", f"f 644 1 {D} a/b"),  # beneath a link
        _manifest(f"x 644 1 {D} a"),
        _manifest("f 644 1 blake3:zz a"),
        _manifest(f"f 644 -1 {D} a"),
        _manifest(f"f 7777 1 {D} a"),
        b"not a manifest\n",
        b"datakeep.tree@v1\nf 644 1 " + D.encode() + b" a",  # truncated line
    ],
)
def test_malformed_manifests_are_rejected(manifest: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(manifest)


_LINE_FIELDS = (
    ["f", "l", "d", "x"],
    ["644", "0", "0644", "1000", "7a"],
    ["0", "4096", "007", "+5", "-1"],
    [D, "-", "sha256:" + "b" * 64, "md5:" + "c" * 32, "blake3:ab", "x:0"],
    ["a", "a/b c", ".", "a/..", "a//b", "/a", "a/", ".hidden", "a/.b", "x\\ny", "n\x00l", "\r"],
)


@pytest.mark.parametrize("algorithm", [None, "blake3", "sha256"])
def test_the_fast_line_parser_agrees_with_the_careful_one(algorithm: str | None) -> None:
    accepted = 0
    for fields in itertools.product(*_LINE_FIELDS):
        line = " ".join(fields)
        fast = format_module._parse_plain(line, algorithm)
        try:
            careful = format_module._parse_line(line, algorithm)
        except ValueError:
            assert fast is None, line  # what the careful parser refuses, the fast one leaves
            continue
        assert fast in (None, careful), line
        accepted += fast is not None
    assert accepted > 0


def test_crafted_tree_cannot_write_outside_the_destination(keep: Keep, tmp_path: Path) -> None:
    target = keep.put(b"../../../etc").digest
    crafted = _manifest(f"l 0 12 {target} evil")
    written = keep.store.write_bytes(crafted)
    keep.store.record([written], kind="tree")
    with pytest.raises(InvalidPath):
        keep.export(written.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_encode_is_canonical_and_reversible() -> None:
    entries = [
        TreeEntry("z", "f", 0o644, 1, D),
        TreeEntry("a\nb\\c", "f", 0o755, 2, D),
        TreeEntry("d", "d", 0o700, 0, None),
    ]
    data = encode_tree(entries)
    assert encode_tree(reversed(entries)) == data
    assert decode_tree(data) == sorted(entries, key=lambda e: e.path)


def test_tree_members_reads_what_decode_reads() -> None:
    entries = [
        TreeEntry("a b\x0bc", "f", 0o644, 1, D),  # a space and a vertical tab in the path
        TreeEntry("d", "d", 0o700, 0, None),
        TreeEntry("l", "l", 0, 1, D),
    ]
    data = encode_tree(entries)
    algorithm = D.partition(":")[0]
    assert tree_members(data, algorithm) == [e.digest for e in decode_tree(data) if e.digest]
    assert tree_members(encode_tree([]), algorithm) == []
    for bad in (b"not a tree\n", data[:-1], data.replace(b" 644 ", b" ")):
        with pytest.raises(IntegrityError):
            tree_members(bad, algorithm)
    with pytest.raises(IntegrityError):
        tree_members(data, "sha256")  # names digests of another algorithm


def test_an_unchanged_directory_skips_the_file_lookups_and_any_change_is_seen(
    keep: Keep, tmp_path: Path, settled_src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = settled_src
    first = keep.put_tree(src, tags={"v": "1"})
    lookups: list[int] = []
    original = keep.stat_cache.lookup
    monkeypatch.setattr(
        keep.stat_cache, "lookup", lambda stats, a: lookups.append(len(stats)) or original(stats, a)
    )
    again = keep.put_tree(src, tags={"v": "2"})
    assert again.digest == first.digest and lookups == []
    assert again.tags == {"v": "2"}  # tags are still recorded on the fast path

    def fresh_digest() -> str:
        """The tree of ``src`` as a keep with no caches computes it."""
        with datakeep.init(tmp_path / f"fresh-{len(seen)}") as other:
            return other.put_tree(src).digest

    seen = {first.digest}
    changes = [
        lambda: (src / "a.txt").write_text("ALPHA"),  # same size, new bytes
        lambda: (src / "private").chmod(0o640),
        lambda: (src / "run.sh").rename(src / "run2.sh"),
        lambda: (src / "empty" / "now-a-file").write_text(""),
        lambda: (src / "sub" / "link").unlink() or (src / "sub" / "link").symlink_to("b.bin"),
    ]
    for change in changes:
        change()
        lookups.clear()
        digest = keep.put_tree(src).digest
        assert lookups, "a changed directory goes file by file"
        assert digest == fresh_digest() and digest not in seen
        seen.add(digest)
        lookups.clear()
        assert keep.put_tree(src).digest == digest and lookups == []


def test_a_remembered_tree_that_left_the_keep_is_stored_again(
    keep: Keep, tmp_path: Path, settled_src: Path
) -> None:
    src = settled_src
    tree = keep.put_tree(src)
    assert keep.gc(grace_s=0).swept  # untagged: the tree and its files go
    assert not keep.exists(tree.digest)
    again = keep.put_tree(src)
    assert again.digest == tree.digest
    assert keep.verify_many().ok and keep.fsck().ok
    keep.export(tree.digest, tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha"


def test_read_many_reads_a_pack_once_and_reports_each_bad_content(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"a": b"alpha" * 10, "b": b"bravo" * 10, "c": b"charlie" * 10}
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    tree = keep.put_tree(src)
    named = {e.path: e.digest for e in decode_tree(keep.get(tree.digest)) if e.digest}
    own = keep.put(b"a blob of its own")
    damage_packed(keep, named["b"], b"x" * 50)
    stored = list(keep.store.stored([*named.values(), own.digest]))
    pack = _pack_of(keep.store.key_of(named["a"]))
    reads: list[str] = []
    original = keep.store.backend.read

    def counting(key: str, *args: int | None) -> bytes:
        reads.append(key)
        return original(key, *args)

    monkeypatch.setattr(keep.store.backend, "read", counting)
    results = {item.digest: data for item, data in keep.store.read_many(stored)}
    assert results[named["a"]] == files["a"] and results[named["c"]] == files["c"]
    assert isinstance(results[named["b"]], IntegrityError)
    assert results[own.digest] == b"a blob of its own"
    assert reads.count(pack) == 1
    # a pack gone: each of its contents says so, the others are still read
    keep.store.backend.delete(pack)
    results = {item.digest: data for item, data in keep.store.read_many(stored)}
    assert all(isinstance(results[named[n]], NotFound) for n in files)
    assert results[own.digest] == b"a blob of its own"


def test_files_stored_by_a_worker_are_recorded_in_batches(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datakeep.trees import put as tree_put

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):  # too large for a pack: stored by a worker
        (src / f"f{i}").write_bytes(os.urandom(PACKED_MAX + 1))
    monkeypatch.setattr(tree_put, "_BATCH_BYTES", 1)  # a batch per file
    batches: list[int] = []
    original = keep.store.record

    def counting(written: list[object], *args: object, **kwargs: object) -> object:
        if written:
            batches.append(len(written))
        return original(written, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keep.store, "record", counting)
    write_file = keep.store.write_file

    def slow_write_file(*args: object, **kwargs: object) -> object:
        time.sleep(0.2)  # each file is recorded before the worker finishes the next
        return write_file(*args, **kwargs)  # type: ignore[arg-type]

    # one worker, so files finish 0.2 s apart (two would finish them in pairs)
    monkeypatch.setattr(tree_put, "LARGE_FILE_WORKERS", 1)

    monkeypatch.setattr(keep.store, "write_file", slow_write_file)
    keep.put_tree(src)
    # each file is in the index (and the stat cache) as soon as it is stored, so an
    # interrupted put resumes after it; then the tree itself
    assert batches == [1, 1, 1, 1, 1]


def test_a_small_tree_kept_inline_is_the_tree_put_would_store(keep: Keep, tmp_path: Path) -> None:
    from datakeep.content.rows import executor
    from datakeep.trees.inline import read_small_tree

    src = tmp_path / "small"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a" / "b" / "x.json").write_text('{"x": 1}')
    (src / "top.txt").write_text("top")
    (src / "same.txt").write_text("top")  # the same bytes twice
    (src / "top.txt").chmod(0o600)
    small = read_small_tree(keep.store, src)
    assert small is not None
    with keep.store.leases.shared():
        inline = keep.db.transact("test", lambda c: small.record(keep.store, executor(c)))
    assert keep.info(inline).kind == "tree"
    keep.export(inline, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b" / "x.json").read_text() == '{"x": 1}'
    assert keep.put_tree(src).digest == inline  # the very manifest the tree put writes

    (src / "big.bin").write_bytes(b"x" * (PACKED_MAX + 1))
    assert read_small_tree(keep.store, src) is None
    (src / "big.bin").unlink()
    (src / "link").symlink_to("top.txt")
    assert read_small_tree(keep.store, src) is None
