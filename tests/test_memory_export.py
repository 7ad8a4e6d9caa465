"""Peak memory of an export, as users and cgroups see it: the resident set including mapped
file pages (``VmHWM``), of a process exporting a tree of four 300 MB files, by copy and by
hard link. A blob is hashed and copied a window at a time by a bounded number of workers,
never mapped or read whole, so the peak stays far below the files' size."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import datakeep

LIMIT = 256 * 1000 * 1000
FILE_SIZE = 300 * 1000 * 1000
BLOCK = 1 << 20

_EXPORT = textwrap.dedent(
    """
    import sys
    import datakeep

    with datakeep.open(sys.argv[1]) as keep:
        keep.export(sys.argv[2], sys.argv[3], link=sys.argv[4])
    with open("/proc/self/status") as status:
        print(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    """
)


def _write_large_files(root: Path, count: int) -> None:
    """``count`` distinct files of :data:`FILE_SIZE` bytes, cheap to make: one random
    block, each copy of it stamped with its file and position."""
    block = bytearray(os.urandom(BLOCK))
    root.mkdir()
    for i in range(count):
        with open(root / f"large{i}.bin", "wb") as f:
            for at in range(0, FILE_SIZE, BLOCK):
                block[:16] = i.to_bytes(8, "big") + at.to_bytes(8, "big")
                f.write(block[: min(BLOCK, FILE_SIZE - at)])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_export_of_four_300_mb_files_stays_under_256_mb(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_large_files(src, 4)
    (src / "small").mkdir()
    for i in range(100):
        (src / "small" / f"{i}.txt").write_bytes(os.urandom(1000))
    project = tmp_path / "project"
    with datakeep.init(project) as keep:
        # ingested by hard link: the test pays for one copy of the data (the export's)
        digest = keep.put_tree(src, link="hardlink").digest
    for link in ("hardlink", "copy"):
        out = tmp_path / f"out-{link}"
        run = subprocess.run(
            [sys.executable, "-c", _EXPORT, str(project), digest, str(out), link],
            capture_output=True,
            text=True,
            check=True,
        )
        peak = int(run.stdout.strip()) * 1024
        assert peak <= LIMIT, f"export by {link}: peak RSS {peak / 1e6:.0f} MB"
        assert (out / "large3.bin").stat().st_size == FILE_SIZE
        assert (out / "small" / "99.txt").stat().st_size == 1000
