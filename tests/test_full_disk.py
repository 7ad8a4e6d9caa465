"""A full disk: reading commands still work, a write says there is no space left."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_cli


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB filesystem of its own (tmpfs), so it can be filled without harm."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    # written until the disk refuses: ENOSPC is the end of the loop, not a failure
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (64 << 10))
            f.flush()
    assert os.statvfs(disk).f_bavail == 0


def test_reading_works_on_a_full_disk_and_writing_says_why(small_disk: Path) -> None:
    run_cli("init", cwd=small_disk)
    (small_disk / "kept.bin").write_bytes(os.urandom(200_000))
    (small_disk / "later.bin").write_bytes(os.urandom(300_000))
    digest = run_cli("put", "kept.bin", cwd=small_disk).stdout.split()[0].decode()
    fill(small_disk)

    assert run_cli("ls", "--full", cwd=small_disk).stdout.startswith(digest.encode())
    assert run_cli("cat", digest, cwd=small_disk).stdout == (small_disk / "kept.bin").read_bytes()
    assert run_cli("info", digest, cwd=small_disk).returncode == 0
    assert run_cli("verify", "--all", cwd=small_disk).stdout.startswith(b"ok: 1 contents")
    assert run_cli("fsck", cwd=small_disk).returncode == 0

    for args in (["put", "later.bin"], ["tag", digest, "k=v"]):
        refused = run_cli(*args, cwd=small_disk, check=False)
        assert refused.returncode == 1
        assert b"no space left on device" in refused.stderr.lower()
        assert b"disk I/O error" not in refused.stderr

    (small_disk / "filler").unlink()  # space again: everything works
    run_cli("put", "later.bin", cwd=small_disk)
    assert run_cli("verify", "--all", cwd=small_disk).stdout.startswith(b"ok: 2 contents")
