"""Copying stored files out: in the kernel, between filesystems, verified as they land."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import datakeep
from datakeep import IntegrityError, copying
from datakeep.content import CHUNK
from datakeep.copying import copy_file, copy_hashed, copy_verified
from datakeep.digest import hash_bytes

from .conftest import blob_path, damage

STEP = 64 * 1024  # small steps, so a copy of a few hundred KiB takes several


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "_STEP", STEP)
    monkeypatch.setattr(copying, "_SERIAL_STEP", STEP)


@pytest.fixture
def no_kernel_copy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """copy_file_range refused, as between two filesystems; the calls it refused."""
    refused: list[int] = []

    def refuse(src: int, dst: int, count: int, *args: object) -> int:
        refused.append(count)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    return refused


def _source(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "source"
    path.write_bytes(data)
    return path


def _copy(source: Path, target: Path, digest: str, size: int, overlap: bool = True) -> None:
    src = os.open(source, os.O_RDONLY)
    try:
        with open(target, "x+b") as dst:
            copy_verified(src, dst.fileno(), digest, size, overlap)
    finally:
        os.close(src)


OVERLAP = pytest.mark.parametrize("overlap", [True, False], ids=["helper-thread", "serial"])


@OVERLAP
@pytest.mark.parametrize("algorithm", ["blake3", "sha256", "md5"])
@pytest.mark.parametrize("size", [0, 1, STEP, 5 * STEP + 123])
def test_a_verified_copy_is_exact_over_any_number_of_steps(
    tmp_path: Path, small_steps: None, algorithm: str, size: int, overlap: bool
) -> None:
    data = os.urandom(size)
    source = _source(tmp_path, data)
    _copy(source, tmp_path / "copy", hash_bytes(data, algorithm), size, overlap)
    assert (tmp_path / "copy").read_bytes() == data


@OVERLAP
def test_both_ways_feed_the_second_hasher_and_report_each_step(
    tmp_path: Path, small_steps: None, overlap: bool
) -> None:
    data = os.urandom(3 * STEP + 5)
    source = _source(tmp_path, data)
    side = hashlib.sha256()
    steps: list[tuple[int, int]] = []
    src = os.open(source, os.O_RDONLY)
    try:
        with open(tmp_path / "copy", "x+b") as dst:
            result = copy_hashed(
                src, dst.fileno(), len(data), "blake3", lambda *s: steps.append(s), side, overlap
            )
    finally:
        os.close(src)
    assert result == (hash_bytes(data, "blake3"), len(data))
    assert side.hexdigest() == hashlib.sha256(data).hexdigest()
    assert steps == [(0, STEP), (STEP, STEP), (2 * STEP, STEP), (3 * STEP, 5)]


@OVERLAP
@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "read-write"])
def test_a_bad_byte_in_any_step_is_caught(
    tmp_path: Path, small_steps: None, request: pytest.FixtureRequest, kernel: bool, overlap: bool
) -> None:
    if not kernel:
        request.getfixturevalue("no_kernel_copy")
    data = bytearray(os.urandom(5 * STEP + 10))
    digest = hash_bytes(bytes(data), "blake3")
    data[3 * STEP + 7] ^= 0x01
    source = _source(tmp_path, bytes(data))
    with pytest.raises(IntegrityError, match="corrupted"):
        _copy(source, tmp_path / "copy", digest, len(data), overlap)


@OVERLAP
@pytest.mark.parametrize(("stored", "problem"), [(100, "truncated"), (300, "longer")])
def test_a_source_of_the_wrong_size_is_refused(
    tmp_path: Path, stored: int, problem: str, overlap: bool
) -> None:
    data = os.urandom(200)
    source = _source(tmp_path, os.urandom(stored))
    with pytest.raises(IntegrityError, match=problem):
        _copy(source, tmp_path / "copy", hash_bytes(data, "blake3"), len(data), overlap)


@OVERLAP
def test_refused_kernel_copy_falls_back_to_reads_and_writes(
    tmp_path: Path, small_steps: None, no_kernel_copy: list[int], overlap: bool
) -> None:
    data = os.urandom(3 * STEP + 5)
    source = _source(tmp_path, data)
    _copy(source, tmp_path / "verified", hash_bytes(data, "blake3"), len(data), overlap)
    with open(source, "rb") as src, open(tmp_path / "plain", "xb") as dst:
        copy_file(src.fileno(), dst.fileno())
    assert (tmp_path / "verified").read_bytes() == data
    assert (tmp_path / "plain").read_bytes() == data
    assert no_kernel_copy  # the kernel copy was tried and refused


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "read-write"])
def test_put_file_copies_a_large_file_in_and_names_it_by_the_copy(
    tmp_path: Path,
    small_steps: None,
    request: pytest.FixtureRequest,
    algorithm: str,
    kernel: bool,
) -> None:
    if not kernel:
        request.getfixturevalue("no_kernel_copy")
    data = os.urandom(CHUNK + 3 * STEP + 1)
    source = _source(tmp_path, data)
    with datakeep.init(tmp_path / "keep", algorithm=algorithm) as keep:
        content = keep.put_file(source)
        assert (content.digest, content.size) == (hash_bytes(data, algorithm), len(data))
        stored = blob_path(keep, content.digest)
        assert stored.read_bytes() == data
        assert stored.stat().st_mode & 0o777 == 0o444
        assert keep.put_file(source).digest == content.digest  # stored once
        assert keep.verify_many().ok


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than ``tmp_path`` (a memory filesystem)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to export to")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


def test_export_to_another_filesystem(
    keep: datakeep.Keep, tmp_path: Path, other_filesystem: Path
) -> None:
    large = os.urandom(3 * 1024 * 1024)  # copied by the kernel where it can
    tree_dir = tmp_path / "tree"
    (tree_dir / "sub").mkdir(parents=True)
    (tree_dir / "sub" / "large.bin").write_bytes(large)
    (tree_dir / "small.txt").write_text("small")
    blob = keep.put(large)
    tree = keep.put_tree(tree_dir)

    keep.export(blob.digest, other_filesystem / "large.bin")
    keep.export(tree.digest, other_filesystem / "tree")
    assert (other_filesystem / "large.bin").read_bytes() == large
    assert (other_filesystem / "tree" / "sub" / "large.bin").read_bytes() == large
    assert (other_filesystem / "tree" / "small.txt").read_text() == "small"

    damage(blob_path(keep, blob.digest), large[:-1] + bytes([large[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        keep.export(blob.digest, other_filesystem / "bad.bin")
    assert sorted(p.name for p in other_filesystem.iterdir()) == ["large.bin", "tree"]
