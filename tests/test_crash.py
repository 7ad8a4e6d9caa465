"""SIGKILL a `datakeep put` of a large tree at several points; nothing may be left broken."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import datakeep
from datakeep.content.packs import pack_member

pytestmark = pytest.mark.slow


def make_dataset(root: Path) -> None:
    rng = random.Random(42)
    for d in range(30):
        folder = root / f"dir{d:02d}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:03d}.bin").write_bytes(rng.randbytes(4096))
    for i in range(4):
        (root / f"large{i}.bin").write_bytes(rng.randbytes(24 * 1024 * 1024))


def put_command(data: Path) -> list[str]:
    return [sys.executable, "-m", "datakeep", "put", str(data)]


def blobs_stored(project: Path) -> int:
    """Blob files (and packs) published in the keep, not its temporary files."""
    objects = project / ".datakeep" / "objects"
    return sum(len(files) for folder, _, files in os.walk(objects) if ".tmp" not in folder)


# Kill points by progress, not by time: a put resumes where the last one was killed, so
# it runs shorter each time, and a schedule timed on a first full put let the later puts
# finish before their kill. Files the put publishes, in order: a pack of the first 2,000
# small files (at the first flush), then each large file; the 1,000 other small files
# are packed at the end, with the last index rows. So the kills land while small files
# are read, then while each large file is hashed and written.
KILL_AT_BLOBS = (1, 2, 3, 4)


def test_sigkill_during_put_leaves_a_consistent_keep(tmp_path: Path, index_url: str | None) -> None:
    data = tmp_path / "data"
    make_dataset(data)
    project = tmp_path / "project"
    datakeep.init(project, index=index_url).close()
    killed = 0
    for at_least in KILL_AT_BLOBS:
        child = subprocess.Popen(
            put_command(data), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if blobs_stored(project) >= at_least:
                break
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        if child.wait() == -signal.SIGKILL:
            killed += 1
        # a killed write leaves no temporary file: blobs are written as anonymous files
        assert list((project / ".datakeep" / "objects" / ".tmp").iterdir()) == []
        with datakeep.open(project) as keep:
            report = keep.verify_many()
            # every index row has its blob and every blob matches its digest
            assert report.ok, report.problems
            for content in keep.store.iter_all():
                key = keep.store.key_of(content.digest)
                member = pack_member(key)
                if member is None:
                    assert keep.store.backend.head(key).size == content.size
                else:
                    assert keep.store.backend.head(member.pack).size > member.end
    assert killed == len(KILL_AT_BLOBS), "every kill should interrupt a put, not arrive after it"

    out = subprocess.run(put_command(data), cwd=project, check=True, capture_output=True)
    digest = out.stdout.split()[0].decode()
    with datakeep.open(project) as keep:
        assert keep.verify_many().ok
        keep.export(digest, tmp_path / "restored")
    for path in data.rglob("*"):
        if path.is_file():
            assert (tmp_path / "restored" / path.relative_to(data)).read_bytes() == (
                path.read_bytes()
            )
    assert os.path.getsize(tmp_path / "restored" / "large0.bin") == 24 * 1024 * 1024
