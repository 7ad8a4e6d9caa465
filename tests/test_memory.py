"""Peak memory stays bounded whatever the file sizes (issue 25): a tree of four 300 MB
files is put, verified, checked, pushed (to a directory and to S3), pulled and exported,
each in a child process that reports its own peak resident set (VmHWM counts the file
pages it maps, as a cgroup does); so is a push to S3 of the largest blob sent whole, in
one PUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .s3server import S3Endpoint

LIMIT = 256_000_000
FILES = 4
FILE_SIZE = 300_000_000

_CHILD = """
import sys
import datakeep

op, keep_path, arg, endpoint, files = sys.argv[1:6]
if op == "put":
    data, _, bucket = arg.partition(" ")  # a bucket for an S3-homed keep
    keep = datakeep.init(keep_path, blobs=bucket or None, endpoint=endpoint or None)
    keep.put_tree(data, tags={"test": "memory"})
elif op == "pull":
    keep = datakeep.init(keep_path)
    keep.add_remote("from", arg, endpoint or None)
    keep.pull("from", everything=True)
else:
    keep = datakeep.open(keep_path)
    tree = keep.find(tags={"test": "memory"}).items[0].digest
    if op == "verify":
        assert keep.verify_many().ok
    elif op == "fsck":
        assert keep.fsck().ok
    elif op == "push":
        name = "s3" if endpoint else "directory"
        keep.add_remote(name, arg, endpoint or None)
        report = keep.push(name, [tree])
        assert report.transferred == int(files) + 1, report  # the files and the tree
    elif op == "export":
        keep.export(tree, arg)
keep.close()
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def peak_rss(op: str, keep: Path, arg: str, endpoint: str = "", files: int = FILES) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, op, str(keep), arg, endpoint, str(files)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


def write_files(root: Path, count: int, size: int) -> None:
    """``count`` files of ``size`` bytes: one random MiB repeated, each MiB stamped with
    its file and place, so every file is different and making them costs little."""
    block = bytearray(os.urandom(1 << 20))
    for i in range(count):
        with open(root / f"large{i}.bin", "wb") as f:
            written = 0
            while written < size:
                block[:16] = f"{i:08d}{written >> 20:08d}".encode()
                piece = memoryview(block)[: min(len(block), size - written)]
                f.write(piece)
                written += len(piece)


@pytest.fixture(scope="module")
def large_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four files of 300 MB."""
    root = tmp_path_factory.mktemp("large") / "data"
    root.mkdir()
    write_files(root, FILES, FILE_SIZE)
    return root


@pytest.fixture(scope="module")
def stored(large_tree: Path) -> Path:
    """A keep holding the large tree, put by a child whose peak is checked."""
    keep = large_tree.parent / "keep"
    assert peak_rss("put", keep, str(large_tree)) <= LIMIT
    return keep


@pytest.mark.parametrize("op", ["verify", "fsck"])
def test_checks_stay_within_the_bound(stored: Path, op: str) -> None:
    assert peak_rss(op, stored, "") <= LIMIT


def test_push_and_pull_with_a_directory_stay_within_the_bound(stored: Path) -> None:
    remote = stored.parent / "remote"
    assert peak_rss("push", stored, str(remote)) <= LIMIT
    assert peak_rss("pull", stored.parent / "pulled", str(remote)) <= LIMIT


def test_push_to_s3_stays_within_the_bound(stored: Path, s3: S3Endpoint) -> None:
    location = f"s3://{s3.new_bucket()}/keep"
    assert peak_rss("push", stored, location, s3.url) <= LIMIT


def test_export_stays_within_the_bound(stored: Path) -> None:
    assert peak_rss("export", stored, str(stored.parent / "out")) <= LIMIT


def test_push_to_s3_of_a_blob_sent_whole_stays_within_the_bound(
    tmp_path: Path, s3: S3Endpoint
) -> None:
    """The largest blob a push sends to an object store in one PUT is held whole."""
    from datakeep.remotes.push import _WHOLE_PUT

    data = tmp_path / "data"
    data.mkdir()
    write_files(data, 2, _WHOLE_PUT)
    keep = tmp_path / "keep"
    assert peak_rss("put", keep, str(data)) <= LIMIT
    location = f"s3://{s3.new_bucket()}/keep"
    assert peak_rss("push", keep, location, s3.url, files=2) <= LIMIT


def test_put_into_s3_of_blobs_staged_whole_stays_within_the_bound(
    tmp_path: Path, s3: S3Endpoint
) -> None:
    """An S3-homed keep holds a blob up to STAGE_IN_MEMORY whole, to send it in one PUT."""
    from datakeep.backends._s3 import STAGE_IN_MEMORY

    data = tmp_path / "data"
    data.mkdir()
    write_files(data, 2, STAGE_IN_MEMORY)
    bucket = f"s3://{s3.new_bucket()}/keep"
    assert peak_rss("put", tmp_path / "keep", f"{data} {bucket}", s3.url, files=2) <= LIMIT
