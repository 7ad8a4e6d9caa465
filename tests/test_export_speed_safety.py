"""The fast export paths stay verified: large files copied (or hashed for a hard link) by
workers while the small ones are written from their packs, each byte checked against its
digest; a damaged blob or pack member is caught on every export, never trusted from an
earlier one."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from datakeep.content import CHUNK, LinkMode, creation_umask
from datakeep.content.packs import pack_member
from datakeep.copying import hash_fd
from datakeep.digest import hash_file
from datakeep.errors import IntegrityError, NotFound
from datakeep.keep import Keep

from .conftest import blob_path, damage_packed

MB = 1 << 20


def _tree(root: Path) -> dict[str, bytes]:
    """A tree with three large files (one of them twice) and small ones in folders."""
    files = {
        "big/a.bin": os.urandom(3 * MB + 123),
        "big/b.bin": os.urandom(2 * MB),
        "c.bin": os.urandom(CHUNK),  # exactly the size where a file counts as large
        "copy-of-a.bin": b"",
    }
    files["copy-of-a.bin"] = files["big/a.bin"]
    for d in range(3):
        for f in range(20):
            files[f"small/d{d}/f{f}.txt"] = os.urandom(100 + f * 37)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "small" / "d1" / "f3.txt").chmod(0o600)
    return files


def _read(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_export_writes_every_file_exactly(keep: Keep, tmp_path: Path, link: LinkMode) -> None:
    files = _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    out = tmp_path / "out"
    keep.export(tree.digest, out, link=link)
    assert _read(out) == files
    assert (out / "small" / "d1" / "f3.txt").stat().st_mode & 0o777 == 0o600
    big = out / "big" / "a.bin"
    if link == "hardlink":  # the large files are the stored blobs themselves
        assert big.stat().st_ino == blob_path(keep, keep.put_file(big).digest).stat().st_ino
        assert big.stat().st_ino == (out / "copy-of-a.bin").stat().st_ino
        assert (out / "small" / "d0" / "f0.txt").stat().st_nlink == 1  # copied from a pack
    else:
        assert big.stat().st_nlink == 1 and big.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_a_large_blob_damaged_after_an_export_is_caught_by_the_next(
    keep: Keep, tmp_path: Path, link: LinkMode
) -> None:
    files = _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    keep.export(tree.digest, tmp_path / "first", link=link)
    blob = blob_path(keep, keep.put_file(tmp_path / "src" / "big" / "b.bin").digest)
    # same size, same mtime: only the bytes differ (no export trusts an earlier check)
    before = blob.stat()
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.seek(MB + 5)
        f.write(b"\xff" if files["big/b.bin"][MB + 5] != 0xFF else b"\x00")
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(IntegrityError, match="corrupted"):
        keep.export(tree.digest, tmp_path / "second", link=link)
    assert not (tmp_path / "second").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".second")]


def test_a_hardlinked_export_edited_in_place_is_caught(keep: Keep, tmp_path: Path) -> None:
    """A hard-linked file and its blob are one inode: an edit of the exported file (made
    writable first) is an edit of the blob, and the next export refuses it."""
    _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    keep.export(tree.digest, tmp_path / "first", link="hardlink")
    edited = tmp_path / "first" / "big" / "a.bin"
    edited.chmod(0o644)
    with open(edited, "r+b") as f:
        f.write(b"edited")
    for link in ("hardlink", "copy"):
        with pytest.raises(IntegrityError):
            keep.export(tree.digest, tmp_path / f"again-{link}", link=link)


@pytest.mark.parametrize("damage", ["longer", "truncated"])
def test_a_large_blob_of_the_wrong_size_is_caught(keep: Keep, tmp_path: Path, damage: str) -> None:
    files = _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    blob = blob_path(keep, keep.put_file(tmp_path / "src" / "big" / "a.bin").digest)
    blob.chmod(0o644)
    if damage == "longer":
        with open(blob, "ab") as f:
            f.write(b"x")
    else:
        os.truncate(blob, len(files["big/a.bin"]) - 1)
    for link in ("hardlink", "copy"):
        with pytest.raises(IntegrityError):
            keep.export(tree.digest, tmp_path / f"out-{link}", link=link)
        assert not (tmp_path / f"out-{link}").exists()


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_a_corrupt_pack_member_is_caught(keep: Keep, tmp_path: Path, link: LinkMode) -> None:
    files = _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    victim = "small/d2/f7.txt"
    damage_packed(keep, keep.put(files[victim]).digest, b"\x00" * len(files[victim]))
    with pytest.raises(IntegrityError):
        keep.export(tree.digest, tmp_path / "out", link=link)
    assert not (tmp_path / "out").exists()


def test_a_missing_large_blob_is_not_found(keep: Keep, tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    blob_path(keep, keep.put_file(tmp_path / "src" / "big" / "b.bin").digest).unlink()
    for link in ("hardlink", "copy"):
        with pytest.raises(NotFound):
            keep.export(tree.digest, tmp_path / f"out-{link}", link=link)


def test_hash_fd_reads_in_windows_what_hash_file_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(17 * MB + 5))  # more than two windows, not page-aligned
    fd = os.open(path, os.O_RDONLY)
    try:
        for algorithm in ("blake3", "sha256"):
            digest, hashed = hash_fd(fd, 17 * MB + 5, algorithm)
            assert (digest, hashed) == (hash_file(path, algorithm), 17 * MB + 5)
        # asked for more than the file holds: the digest of what is there, and its length
        assert hash_fd(fd, 18 * MB, "blake3") == (hash_file(path), 17 * MB + 5)
    finally:
        os.close(fd)


def test_a_missing_pack_is_not_found_for_each_of_its_files(keep: Keep, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    member = pack_member(keep.store.key_of(keep.put(files["small/d0/f0.txt"]).digest))
    assert member is not None
    keep.store.backend.path_of(member.pack).unlink()  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        keep.export(tree.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    wanted = [(keep.put(files["small/d0/f1.txt"]).digest, 137, member.offset, member.length)]
    assert [type(r) for r in keep.store.read_pack_members(member.pack, wanted)] == [NotFound]


def _many_units(root: Path, small: int = 700) -> dict[str, bytes]:
    """More small files than one unit of work holds, with large ones beside them."""
    files = {f"d{i % 7}/f{i:04d}.txt": os.urandom(50 + i % 300) for i in range(small)}
    files.update({f"large{i}.bin": os.urandom(CHUNK + i) for i in range(3)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_an_export_in_many_units_reports_each_file_once_from_the_calling_thread(
    keep: Keep, tmp_path: Path, link: LinkMode
) -> None:
    files = _many_units(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    seen: list[tuple[int, int | None, str]] = []
    keep.export(
        tree.digest,
        tmp_path / "out",
        link=link,
        progress=lambda p: seen.append((p.done, p.total, threading.current_thread().name)),
    )
    assert _read(tmp_path / "out") == files
    assert [done for done, _, _ in seen] == list(range(1, len(files) + 1))
    assert {(total, thread) for _, total, thread in seen} == {(len(files), "MainThread")}


def test_bad_files_in_any_unit_come_from_a_mirror_each_reported_once(
    keep: Keep, tmp_path: Path
) -> None:
    files = _many_units(tmp_path / "src")
    tree = keep.put_tree(tmp_path / "src")
    keep.add_remote("mirror", str(tmp_path / "mirror"))
    keep.push("mirror", [tree.digest])
    # a member of a pack's first unit and one of a later unit, and a large blob
    for victim in ("d0/f0000.txt", "d6/f0685.txt"):
        damage_packed(keep, keep.put(files[victim]).digest, b"\x00" * len(files[victim]))
    blob_path(keep, keep.put(files["large1.bin"]).digest).unlink()
    said: list[str] = []
    keep.on_fallback = said.append
    seen: list[int] = []
    keep.export(tree.digest, tmp_path / "out", progress=lambda p: seen.append(p.done))
    assert _read(tmp_path / "out") == files
    assert seen == list(range(1, len(files) + 1))
    assert len(said) == 3


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_exported_modes_are_exact_whatever_the_umask(
    keep: Keep, tmp_path: Path, umask: int
) -> None:
    modes = {"a": 0o644, "b": 0o600, "c": 0o755, "d": 0o640, "e": 0o777, "f": 0o400}
    for name, mode in modes.items():
        (tmp_path / "src" / "packed").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / "packed" / name).write_bytes(name.encode() * 100)
        (tmp_path / "src" / "packed" / name).chmod(mode)
    tree = keep.put_tree(tmp_path / "src")
    previous = os.umask(umask)
    try:
        assert creation_umask(tmp_path) == umask
        keep.export(tree.digest, tmp_path / "out")
    finally:
        os.umask(previous)
    out = tmp_path / "out" / "packed"
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == modes


def _full_disk(*args: Any) -> bool:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _small_writes(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[int]:
    """Count the export's writes of small files (one list item each); the ``fail_at``th
    finds the disk full."""
    from datakeep.content import write_new_file

    calls: list[int] = []

    def counted(*args: Any) -> None:
        calls.append(1)
        if len(calls) == fail_at:
            _full_disk()
        write_new_file(*args)

    monkeypatch.setattr("datakeep.trees.export.write_new_file", counted)
    return calls


def test_a_disk_that_fills_mid_export_leaves_nothing_and_no_worker(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_units(tmp_path / "src", small=2000)  # eight units of small files
    tree = keep.put_tree(tmp_path / "src")
    calls = _small_writes(monkeypatch, fail_at=300)  # in the second unit
    with pytest.raises(OSError, match="No space left"):
        keep.export(tree.digest, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "src"]  # no out, no staging
    assert not [t for t in threading.enumerate() if t.name.startswith("datakeep-export")]
    # the rest was skipped once the disk was full: at most the unit the worker was in
    assert len(calls) <= 300 + 256


def test_a_large_copy_that_fails_stops_the_small_files_too(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_units(tmp_path / "src", small=2000)
    tree = keep.put_tree(tmp_path / "src")
    calls = _small_writes(monkeypatch)
    monkeypatch.setattr(keep.store, "export_file", _full_disk)  # the large files' copy
    with pytest.raises(OSError, match="No space left"):
        keep.export(tree.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert len(calls) <= 256  # at most the unit of small files under way, of eight
