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


def _run_store_with_master(project: Path, index_url: str | None) -> None:
    from datakeep.runs import MasterJob, Project, RunStore

    with RunStore(datakeep.init(project, index=index_url), owns_keep=True) as runs:
        runs.save_project(Project("proj", "factory"))
        runs.log_master_job_start(MasterJob("master", "proj", status="running"))


def test_worker_processes_log_records_into_one_keep(tmp_path: Path, index_url: str | None) -> None:
    from datakeep.runs import RunStore

    project = tmp_path / "project"
    _run_store_with_master(project, index_url)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        logged = pool.starmap(
            workload.log_records, [(str(project), w, 6, 100) for w in range(PROCESSES)]
        )
    assert logged == [400] * PROCESSES
    with RunStore.open(project) as runs:
        counts = runs.count_records(master_job_id="master")
        assert (counts["completed"], counts["filtered"]) == (PROCESSES * 300, PROCESSES * 100)
        seen, after = [], None
        while True:
            page = runs.list_records(master_job_id="master", limit=500, after=after)
            seen.extend(page.items)
            if page.next is None:
                break
            after = page.next
        assert len({r.record_uid for r in seen}) == len(seen) == PROCESSES * 400
        for record in seen[::37]:
            if record.status == "completed":
                assert runs.get_record_data(record.output_ref or "")["worker"] == int(
                    record.job_id.split("-")[1]
                )


def test_sigkill_of_record_writers_leaves_no_row_without_its_data(
    tmp_path: Path, index_url: str | None
) -> None:
    from datakeep.runs import RunStore

    project = tmp_path / "project"
    _run_store_with_master(project, index_url)
    rng = random.Random(7)
    killed = 0
    for round_ in range(3):
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.workload",
                    "runs",
                    str(project),
                    str(round_ * 10 + n),
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for n in range(3)
        ]
        started = time.monotonic()
        for child in children:
            time.sleep(max(0.0, started + rng.uniform(0.8, 2.0) - time.monotonic()))
            child.send_signal(signal.SIGKILL)
        for child in children:
            code = child.wait()
            assert code in (-signal.SIGKILL, 0), child.stderr.read().decode()  # type: ignore[union-attr]
            killed += code == -signal.SIGKILL
    assert killed >= 6
    with RunStore.open(project) as runs:
        logged = sum(runs.count_records(master_job_id="master").values())
        assert logged > 0
        after, rows = None, 0
        while True:
            page = runs.list_records(master_job_id="master", limit=500, after=after)
            for record in page.items:
                assert record.output_ref is not None
                assert runs.get_record_data(record.output_ref)  # present and verified
            rows += len(page.items)
            if page.next is None:
                break
            after = page.next
        assert rows == logged  # the counts agree with the rows
        report = runs.keep.fsck()
        assert report.ok, report


def test_sigkill_during_push_and_pull_resumes_and_records_only_the_truth(
    tmp_path: Path, index_url: str | None
) -> None:
    project, other, scratch = tmp_path / "project", tmp_path / "other", tmp_path / "scratch"
    data = tmp_path / "data"
    rng = random.Random(3)
    for d in range(20):
        (data / f"d{d}").mkdir(parents=True)
        for f in range(100):
            (data / f"d{d}" / f"f{f}").write_bytes(rng.randbytes(2048))
    for i in range(40):  # packable, so several packs
        (data / f"mid{i}.bin").write_bytes(rng.randbytes(600_000))
    for i in range(3):  # one object each, streamed
        (data / f"large{i}.bin").write_bytes(rng.randbytes(12_000_000))
    blobs = 20 * 100 + 40 + 3 + 1  # files and the manifest
    with datakeep.init(project, index=index_url) as keep:
        tree = keep.put_tree(data).digest
        for name in ("nas", "scratch"):
            keep.add_remote(name, str(tmp_path / name))
    for keep_dir in (other, scratch):
        with datakeep.init(keep_dir) as keep:
            keep.add_remote("nas", str(tmp_path / "nas"))

    def cli(args: list[str], cwd: Path, kill_after: float | None = None) -> float:
        """Run the command; with ``kill_after`` SIGKILL it then (asserting it was running)."""
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "datakeep", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if kill_after is not None:
            time.sleep(kill_after)
            child.send_signal(signal.SIGKILL)
            assert child.wait() == -signal.SIGKILL, "the kill should land mid-transfer"
        else:
            assert child.wait() == 0
        return time.monotonic() - started

    # how long a whole push and pull take here, to kill in the middle of one
    push_time = cli(["push", "scratch", tree], project)
    cli(["push", "nas", tree], project, kill_after=push_time * 0.6)
    with datakeep.open(project) as keep:
        assert keep.verify_remote("nas", rehash=True).ok  # the inventory claims only the truth
        recorded_before = keep.verify_remote("nas").checked
        report = keep.push("nas", [tree])
        # resumed: what the inventory had is skipped; the rest is sent (create-only: an
        # object that made it is never overwritten)
        assert recorded_before + report.already + report.transferred == blobs
        assert keep.push("nas", [tree]).transferred == 0
        assert keep.verify_remote("nas", rehash=True).checked == blobs
    pull_time = cli(["pull", "nas", tree], scratch)
    cli(["pull", "nas", tree], other, kill_after=pull_time * 0.6)
    with datakeep.open(other) as keep:
        assert keep.fsck().ok  # what was recorded is there and verifies
        keep.pull("nas", [tree])
        keep.export(tree, tmp_path / "restored")
    for name in ("d7/f42", "mid3.bin", "large2.bin"):
        assert (tmp_path / "restored" / name).read_bytes() == (data / name).read_bytes()
