"""Many writers at once, and writers (and gc) killed at random points, on both databases."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

import datakeep
from datakeep.index import contents, placements, tags
from datakeep.trees import decode_tree

from . import workload

pytestmark = pytest.mark.slow

PROCESSES = 4
THREADS = 8
REPO = Path(__file__).resolve().parent.parent


def count(keep: datakeep.Keep, table: object) -> int:
    with keep.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_many_processes_and_threads_write_at_once(tmp_path: Path, index_url: str | None) -> None:
    project = tmp_path / "project"
    datakeep.init(project, index=index_url).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            workload.write_process,
            [(str(project), str(tmp_path / "scratch"), p, THREADS) for p in range(PROCESSES)],
        )
    writers = PROCESSES * THREADS
    shared, distinct = workload.SHARED, workload.DISTINCT
    # shared contents once; each writer's own contents; the common tree file once, two own
    # files and one tree per writer
    expected = shared + writers * distinct + 1 + writers * 2 + writers
    with datakeep.open(project) as keep:
        assert count(keep, contents) == expected
        assert count(keep, placements) == expected  # no duplicate rows
        assert count(keep, tags) == shared + writers * distinct * 2 + writers
        put = {d for part in results for d in part}
        trees = [c.digest for c in keep.store.iter_all(kind="tree")]
        members = {e.digest for t in trees for e in decode_tree(keep.get(t), keep.algorithm)}
        assert put | members == {c.digest for c in keep.store.iter_all()}
        for j in range(shared):
            found = keep.find({"shared": str(j)}).items
            assert len(found) == 1 and keep.get(found[0].digest) == f"shared {j}".encode()
        report = keep.fsck()
        assert report.ok and report.orphans == [] and report.checked == expected


def spawn_writer(project: Path, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workload", str(project), str(seed)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def spawn_gc(project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "datakeep", "gc", "--grace", "0"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_of_concurrent_writers_and_gc_at_random_points(
    tmp_path: Path, index_url: str | None
) -> None:
    project = tmp_path / "project"
    datakeep.init(project, index=index_url).close()
    rng = random.Random(20261122)  # a fixed schedule of kills
    killed = 0
    for round_ in range(4):
        children = [spawn_writer(project, round_ * 10 + n) for n in range(3)]
        started = time.monotonic()
        # start-up takes about 0.3 s; kill each somewhere in the next 1.5 s, gc in between
        time.sleep(0.5)
        collector = spawn_gc(project)
        for child in [*children, collector]:
            time.sleep(max(0.0, started + rng.uniform(0.6, 2.0) - time.monotonic()))
            child.send_signal(signal.SIGKILL)
        for child in [*children, collector]:
            code = child.wait()
            assert code in (-signal.SIGKILL, 0), child.stderr.read().decode()  # type: ignore[union-attr]
            killed += code == -signal.SIGKILL
        with datakeep.open(project) as keep:
            report = keep.fsck()
            # no row without its blob, no bad blob, no tree naming a gap
            assert report.missing == [] and report.corrupted == [] and report.dangling == []
    assert killed >= 10, "the kills should land while the writers are running"
    with datakeep.open(project) as keep:
        assert count(keep, contents) > 0
        keep.gc(grace_s=0)  # orphans are only ever gc candidates
        after = keep.fsck()
        assert after.ok and after.orphans == []
