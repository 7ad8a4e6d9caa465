"""Run records on SQLite and PostgreSQL: the operations, bad input, and the defects of
the original storage layer that must not come back."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import datakeep
from datakeep.content import INLINE_MAX
from datakeep.errors import IntegrityError, InvalidDigest, InvalidInput, NotFound
from datakeep.keep import Keep
from datakeep.runs import AsyncRunStore, ExecutionJob, MasterJob, Project, Record, RunStore

from .conftest import corrupt_inline

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture
def runs(keep: Keep) -> RunStore:
    store = RunStore(keep)
    store.setup()
    store.save_project(Project("proj", "Synthetic QA", "questions and answers", T0, T0))
    store.log_master_job_start(MasterJob("master", "proj", status="running", creation_time=T0))
    store.log_execution_job_start(
        ExecutionJob("job", "master", status="running", run_config={"n": 3}, run_config_hash="h1")
    )
    return store


def records(
    n: int, job: str = "job", master: str = "master", status: str = "completed"
) -> list[Record]:
    return [Record(f"{job}-r{i:05d}", job, master, status) for i in range(n)]


def test_models_round_trip_exactly(runs: RunStore) -> None:
    config = {"z": 1, "a": [1.5, "ü", None, {"deep": True}], "big": 2**62, "tiny": 1e-300}
    tz = timezone(timedelta(hours=5, minutes=30))
    job = ExecutionJob(
        "job2",
        "master",
        status="pending",
        run_config=config,
        run_config_hash="h2",
        worker_id="w7",
        creation_time=datetime(2026, 5, 6, 7, 8, 9, 1, tzinfo=tz),
        update_time=T0,
    )
    runs.log_execution_job_start(job)
    got = runs.get_execution_job("job2")
    assert got is not None
    assert got.run_config == config and list(got.run_config) == list(config)  # order too
    assert got.creation_time == job.creation_time and got.creation_time.tzinfo is UTC
    assert got.worker_id == "w7" and got.status == "pending"
    project = runs.get_project("proj")
    assert project == Project("proj", "Synthetic QA", "questions and answers", T0, T0)
    assert runs.get_project("absent") is None and runs.get_master_job("absent") is None


def test_bad_input_is_refused_and_changes_nothing(runs: RunStore) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        runs.save_project(Project("p2", "n", created_at=naive))
    with pytest.raises(InvalidInput, match="not a master job status"):
        runs.log_master_job_start(MasterJob("m2", "proj", status="done"))
    with pytest.raises(InvalidInput, match="not a execution job status"):
        runs.log_execution_job_end("job", "succeeded")
    with pytest.raises(InvalidInput, match="not a record status"):
        runs.log_records([*records(2), Record("bad", "job", "master", "completed_with_errors")])
    with pytest.raises(InvalidInput, match="not JSON"):
        runs.log_master_job_end("master", "completed", summary={"nan": float("nan")})
    with pytest.raises(InvalidInput, match="unknown count"):
        runs.log_execution_job_end("job", "completed", counts={"completd": 3})
    with pytest.raises(NotFound, match="no project"):
        runs.log_master_job_start(MasterJob("m2", "no-such-project"))
    with pytest.raises(NotFound, match="no execution job"):
        runs.log_records(records(3, job="no-such-job"))
    with pytest.raises(InvalidInput, match="belongs to master job"):
        runs.log_records([Record("r", "job", "another-master")])
    with pytest.raises(NotFound):
        runs.update_master_job_status("no-such-master", "failed")
    assert runs.get_project("p2") is None and runs.get_master_job("m2") is None
    assert sum(runs.count_records(master_job_id="master").values()) == 0
    assert runs.list_records(master_job_id="master").items == []
    assert runs.get_master_job("master").status == "running"  # type: ignore[union-attr]


def test_resaving_a_project_keeps_its_master_jobs(runs: RunStore) -> None:
    runs.save_project(Project("proj", "Renamed", None, T0 + timedelta(days=1), T0))
    project = runs.get_project("proj")
    assert project is not None and project.name == "Renamed"
    assert project.created_at == T0  # created once; a re-save updates in place
    assert [j.master_job_id for j in runs.list_master_jobs(project_id="proj")] == ["master"]


def test_relogging_a_job_start_keeps_its_records(runs: RunStore) -> None:
    runs.log_records(records(5))
    runs.log_execution_job_start(ExecutionJob("job", "master", status="running", worker_id="w2"))
    runs.log_master_job_start(MasterJob("master", "proj", status="running"))
    assert len(runs.list_records(job_id="job").items) == 5
    assert runs.count_records(job_id="job")["completed"] == 5
    assert runs.get_execution_job("job").worker_id == "w2"  # type: ignore[union-attr]
    runs.log_master_job_start(MasterJob("other-master", "proj"))
    with pytest.raises(InvalidInput, match="belongs to master job"):
        runs.log_execution_job_start(ExecutionJob("job", "other-master"))


def test_master_jobs_lifecycle_and_listing(runs: RunStore) -> None:
    for i, status in enumerate(["pending", "completed", "failed", "completed"]):
        runs.log_master_job_start(
            MasterJob(f"m{i}", "proj", status=status, creation_time=T0 + timedelta(seconds=i + 1))
        )
    completed = runs.list_master_jobs(project_id="proj", status_filter=["completed"])
    assert [j.master_job_id for j in completed] == ["m3", "m1"]  # newest first
    first = runs.list_master_jobs(project_id="proj", limit=3, order="oldest")
    assert [j.master_job_id for j in first] == ["master", "m0", "m1"] and first.next
    rest = runs.list_master_jobs(project_id="proj", limit=3, after=first.next, order="oldest")
    assert [j.master_job_id for j in rest] == ["m2", "m3"] and rest.next is None
    runs.update_master_job_status("m0", "cancelled")
    assert runs.get_master_job("m0").status == "cancelled"  # type: ignore[union-attr]

    runs.log_records(records(4))
    runs.log_records(
        [Record("f1", "job", "master", "failed"), Record("d1", "job", "master", "duplicate")]
    )
    runs.log_master_job_end("master", "completed_with_errors", summary={"note": "two bad"})
    done = runs.get_master_job("master")
    assert done is not None and done.status == "completed_with_errors"
    assert (done.total_record_count, done.completed_record_count, done.failed_record_count) == (
        6,
        4,
        1,
    )
    assert done.duplicate_record_count == 1 and done.summary == {"note": "two bad"}
    assert done.end_time is not None and done.end_time.tzinfo is UTC


def test_execution_jobs_end_list_and_resume_by_config_hash(runs: RunStore) -> None:
    runs.log_execution_job_start(ExecutionJob("job2", "master", run_config_hash="h1"))
    runs.log_execution_job_end(
        "job",
        "failed",
        counts={"attempted_requests": 10, "completed": 7, "failed": 3},
        error_message="rate limited",
    )
    ended = runs.get_execution_job("job")
    assert ended is not None and ended.status == "failed" and ended.error_message == "rate limited"
    assert (ended.attempted_requests, ended.completed_record_count) == (10, 7)
    assert [j.job_id for j in runs.list_execution_jobs("master", ["failed"])] == ["job"]
    resume = runs.find_execution_jobs("h1", status_filter=["pending", "running"])
    assert [j.job_id for j in resume] == ["job2"]
    assert len(runs.list_execution_jobs("master", limit=1)) == 1


def test_records_update_in_place_with_exact_counts(runs: RunStore) -> None:
    runs.log_records(records(10, status="running"))
    runs.log_records(
        [*records(6, status="completed"), Record("job-r00009", "job", "master", "failed")]
    )
    counts = runs.count_records(master_job_id="master")
    assert (counts["running"], counts["completed"], counts["failed"]) == (3, 6, 1)
    assert runs.count_records(job_id="job", status_filter=["failed"]) == {"failed": 1}
    record = runs.get_record_metadata("job-r00009")
    assert record is not None and record.status == "failed"
    runs.log_execution_job_start(ExecutionJob("job2", "master"))
    with pytest.raises(InvalidInput, match="belongs to execution job"):
        runs.log_record_metadata(Record("job-r00001", "job2", "master", "completed"))
    assert runs.count_records(job_id="job2")["completed"] == 0


def test_keyset_paging_never_skips_or_repeats_while_records_arrive(runs: RunStore) -> None:
    runs.log_records(records(250))
    seen: list[str] = []
    after = None
    arriving = 0
    while True:
        page = runs.list_records(master_job_id="master", limit=40, after=after, order="oldest")
        seen.extend(r.record_uid for r in page.items)
        # new records land between pages, some of them updates of earlier ones
        runs.log_records([Record(f"late-{arriving + i}", "job", "master") for i in range(7)])
        runs.log_record_metadata(Record("job-r00000", "job", "master", "failed"))
        arriving += 7
        if page.next is None:
            break
        after = page.next
    assert len(seen) == len(set(seen))
    assert set(f"job-r{i:05d}" for i in range(250)) <= set(seen)
    failed = runs.list_records(job_id="job", status_filter=["failed"])
    assert [r.record_uid for r in failed.items] == ["job-r00000"]


def test_record_data_is_verified_content_with_a_portable_reference(
    tmp_path: Path, index_url: str | None
) -> None:
    with RunStore(datakeep.init(tmp_path / "a", index=index_url), owns_keep=True) as runs:
        runs.save_project(Project("p", "p"))
        runs.log_master_job_start(MasterJob("m", "p"))
        runs.log_execution_job_start(ExecutionJob("j", "m"))
        data = {"question": "2+2?", "answer": "4", "score": 0.75}
        ref = runs.save_record_data("r", "m", "j", data)
        runs.log_record_metadata(Record("r", "j", "m", "completed", output_ref=ref))
        config_ref = runs.request_config_ref("m")
        runs.save_request_config(config_ref, {"model": "x", "temperature": 0.2})
        assert ref.startswith("blake3:") and "/" not in ref
    shutil.move(tmp_path / "a", tmp_path / "b")  # references survive a moved keep
    with RunStore.open(tmp_path / "b") as runs:
        record = runs.get_record_metadata("r")
        assert record is not None and runs.get_record_data(record.output_ref or "") == data
        assert runs.get_request_config(config_ref) == {"model": "x", "temperature": 0.2}
        for escape in ("../../etc/passwd", "/etc/passwd", "blake3:../x"):
            with pytest.raises(InvalidDigest):
                runs.get_record_data(escape)
        with pytest.raises(NotFound):
            runs.get_request_config("request-config/absent")
        corrupt_inline(runs.keep, ref, b'{"answer": "5"}')  # small payloads live in the index
        with pytest.raises(IntegrityError):
            runs.get_record_data(ref)


def test_gc_keeps_record_data_and_configs(runs: RunStore) -> None:
    kept = runs.save_record_data("r", "master", "job", {"kept": True})
    runs.log_record_metadata(Record("r", "job", "master", "completed", output_ref=kept))
    runs.save_request_config(runs.request_config_ref("master"), {"cfg": 1})
    loose = runs.save_record_data("never-logged", "master", "job", {"kept": False})
    report = runs.keep.gc(grace_s=0)
    assert report.roots["runs"] == 2
    assert loose in report.swept and kept not in report.swept
    assert runs.get_record_data(kept) == {"kept": True}
    assert runs.get_request_config(runs.request_config_ref("master")) == {"cfg": 1}


def test_close_is_idempotent(keep: Keep) -> None:
    store = RunStore(keep)
    store.close()
    store.close()
    with pytest.raises(InvalidInput):
        store.setup()


def test_records_and_their_data_are_written_together(runs: RunStore) -> None:
    batch = records(3)
    big = {"blob": "x" * (INLINE_MAX + 10)}  # too big for the index: stored as a file
    data = {batch[0].record_uid: {"a": 1}, batch[1].record_uid: big}
    runs.log_records(batch, data)
    got = {r.record_uid: r for r in runs.list_records(job_id="job").items}
    assert runs.get_record_data(got[batch[0].record_uid].output_ref or "") == {"a": 1}
    assert runs.get_record_data(got[batch[1].record_uid].output_ref or "") == big
    assert got[batch[2].record_uid].output_ref is None
    with pytest.raises(InvalidInput, match="not in the batch"):
        runs.log_records(records(1), {"stranger": {"a": 2}})
    # a bad row in the batch: neither the rows nor their payloads are kept
    before = {c.digest for c in runs.keep.store.iter_all()}
    with pytest.raises(NotFound):
        runs.log_records(
            [Record("ok", "job", "master"), Record("bad", "no-job", "master")],
            {"ok": {"never": "stored"}, "bad": {"never": "either"}},
        )
    assert runs.get_record_metadata("ok") is None
    assert {c.digest for c in runs.keep.store.iter_all()} == before


def test_async_store_coalesces_a_thousand_concurrent_tasks(keep: Keep) -> None:
    async def main() -> None:
        async with AsyncRunStore(RunStore(keep)) as runs:
            await runs.save_project(Project("p", "async"))
            await runs.log_master_job_start(MasterJob("m", "p"))
            await runs.log_execution_job_start(ExecutionJob("j", "m"))

            async def produce(i: int) -> None:
                record = Record(f"r{i:04d}", "j", "m", "completed" if i % 10 else "failed")
                await runs.log_record(record, {"i": i, "text": "payload " * 10})

            async def bad() -> None:
                await runs.log_record(Record("bad", "no-such-job", "m"))

            results = await asyncio.gather(
                *(produce(i) for i in range(1000)), bad(), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1 and isinstance(errors[0], NotFound)  # only its own caller
            counts = await runs.count_records(master_job_id="m")
            assert (counts["completed"], counts["failed"]) == (900, 100)
            ref = await runs.save_record_data("r0001", "m", "j", {"again": True})
            assert await runs.get_record_data(ref) == {"again": True}
            record = await runs.get_record_metadata("r0007")
            assert record is not None
            assert await runs.get_record_data(record.output_ref or "") == {
                "i": 7,
                "text": "payload " * 10,
            }
            page = await runs.list_records(master_job_id="m", limit=1000)
            assert len(page.items) == 1000 and page.next is None

    asyncio.run(main())


def test_timestamps_are_exact_to_the_microsecond_in_any_zone() -> None:
    from datakeep.runs.convert import from_micros, to_micros

    for moment in (
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-7))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        assert from_micros(to_micros(moment, "t")) == moment


def test_a_busy_database_makes_writers_wait_not_drop_records(tmp_path: Path) -> None:
    """SQLite's write lock held by another process: the write waits, then lands."""
    import sqlite3
    import threading
    import time

    with RunStore(datakeep.init(tmp_path), owns_keep=True) as runs:
        runs.save_project(Project("p", "p"))
        runs.log_master_job_start(MasterJob("master", "p"))
        runs.log_execution_job_start(ExecutionJob("job", "master"))
        holder = sqlite3.connect(
            runs.keep.path / "index.sqlite", isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
        threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
        started = time.monotonic()
        runs.log_records(records(100))
        assert time.monotonic() - started >= 0.4
        assert runs.count_records(job_id="job")["completed"] == 100
        holder.close()
