"""Run records as a data factory ports onto them: listing order and keyset paging in
both directions, filters, the fields a factory keeps, counts checked, references issued,
idempotent close; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import datakeep
from datakeep.errors import InvalidInput
from datakeep.index import contents
from datakeep.keep import Keep
from datakeep.runs import AsyncRunStore, ExecutionJob, MasterJob, Project, Record, RunStore
from datakeep.runs.schema import request_configs

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def runs(keep: Keep) -> RunStore:
    store = RunStore(keep)
    store.save_project(Project("proj", "Synthetic QA", created_at=T0))
    for m in range(3):
        store.log_master_job_start(
            MasterJob(f"m{m}", "proj", status="running", creation_time=T0 + timedelta(minutes=m))
        )
        for j in range(2):
            store.log_execution_job_start(
                ExecutionJob(
                    f"m{m}-j{j}",
                    f"m{m}",
                    run_config_hash=f"h{j}",
                    creation_time=T0 + timedelta(minutes=m, seconds=j),
                )
            )
    return store


def test_jobs_are_listed_newest_first_or_oldest_first_page_by_page(runs: RunStore) -> None:
    assert [j.master_job_id for j in runs.list_master_jobs("proj")] == ["m2", "m1", "m0"]
    newest = runs.list_master_jobs("proj", limit=2)
    assert [j.master_job_id for j in newest] == ["m2", "m1"]
    older = runs.list_master_jobs("proj", limit=2, after=newest.next)
    assert [j.master_job_id for j in older] == ["m0"] and older.next is None
    oldest = runs.list_master_jobs("proj", limit=1, order="oldest")
    assert [j.master_job_id for j in oldest] == ["m0"]
    jobs = runs.list_execution_jobs("m1", order="oldest")
    assert [j.job_id for j in jobs] == ["m1-j0", "m1-j1"]
    assert [j.job_id for j in runs.list_execution_jobs("m1")] == ["m1-j1", "m1-j0"]
    assert [j.master_job_id for j in runs.list_master_jobs(limit=None)] == ["m2", "m1", "m0"]


def test_projects_by_creation_or_name(runs: RunStore) -> None:
    runs.save_project(Project("alpha", "Alpha", created_at=T0 + timedelta(days=1)))
    assert [p.project_id for p in runs.list_projects()] == ["proj", "alpha"]
    by_name = runs.list_projects(order="name", limit=1)
    assert [p.name for p in by_name] == ["Alpha"]
    assert [p.name for p in runs.list_projects("name", 5, by_name.next)] == ["Synthetic QA"]


def test_page_tokens_are_checked(runs: RunStore) -> None:
    token = runs.list_master_jobs(limit=1).next
    assert token is not None
    with pytest.raises(InvalidInput, match="another listing order"):
        runs.list_master_jobs(limit=1, after=token, order="oldest")
    with pytest.raises(InvalidInput, match="not a page token"):
        runs.list_master_jobs(after="not a token!")
    with pytest.raises(InvalidInput, match="order"):
        runs.list_master_jobs(order="sideways")
    with pytest.raises(InvalidInput, match="limit"):
        runs.list_master_jobs(limit=0)


def test_records_filtered_by_master_job_and_status_together(runs: RunStore) -> None:
    batch = [
        Record(f"{job}-r{i}", job, master, "failed" if i % 3 == 0 else "completed")
        for master in ("m0", "m1")
        for job in (f"{master}-j0", f"{master}-j1")
        for i in range(6)
    ]
    runs.log_records(batch)
    found = runs.list_records(master_job_id="m1", job_id="m1-j0", status="failed", order="oldest")
    assert [r.record_uid for r in found] == ["m1-j0-r0", "m1-j0-r3"]
    assert runs.list_records(master_job_id="m0", job_id="m1-j0").items == []
    assert len(runs.list_records(master_job_id="m1", status=["completed", "failed"])) == 12
    with pytest.raises(InvalidInput, match="not both"):
        runs.list_records(master_job_id="m1", status="failed", status_filter=["failed"])
    with pytest.raises(InvalidInput, match="give master_job_id"):
        runs.list_records()


def test_limit_none_pages_underneath(runs: RunStore) -> None:
    runs.log_records([Record(f"r{i:05d}", "m0-j0", "m0") for i in range(1203)])
    everything = runs.list_records(master_job_id="m0", limit=None)
    assert not isinstance(everything, list)  # an iterator, not a list loaded at once
    uids = [r.record_uid for r in everything]
    assert uids == [f"r{i:05d}" for i in reversed(range(1203))]
    oldest = list(runs.list_records(job_id="m0-j0", limit=None, order="oldest"))
    assert [r.record_uid for r in oldest[:2]] == ["r00000", "r00001"] and len(oldest) == 1203


def test_find_execution_jobs_within_a_master_job(runs: RunStore) -> None:
    assert [j.job_id for j in runs.find_execution_jobs("h1")] == ["m0-j1", "m1-j1", "m2-j1"]
    assert [j.job_id for j in runs.find_execution_jobs("h1", master_job_id="m1")] == ["m1-j1"]
    assert runs.find_execution_jobs("h1", ["failed"], master_job_id="m1") == []


def test_fields_a_factory_keeps_read_back(runs: RunStore) -> None:
    runs.log_master_job_start(
        MasterJob(
            "big",
            "proj",
            target_record_count=10_000,
            storage_uri="s3://lab/qa/big",
            metadata_storage_uri_override="s3://lab/meta",
            data_storage_uri_override="s3://lab/data",
        )
    )
    job = runs.get_master_job("big")
    assert job is not None and job.target_record_count == 10_000
    assert (job.storage_uri, job.metadata_storage_uri_override, job.data_storage_uri_override) == (
        "s3://lab/qa/big",
        "s3://lab/meta",
        "s3://lab/data",
    )
    runs.log_execution_job_start(ExecutionJob("big-j", "big", produced_outputs_count=2))
    runs.log_execution_job_end("big-j", "completed", counts={"produced_outputs": 7})
    assert runs.get_execution_job("big-j").produced_outputs_count == 7  # type: ignore[union-attr]
    done = T0 + timedelta(hours=1)
    runs.log_records([Record("late", "big-j", "big", "completed", end_time=done)])
    runs.log_records([Record("late", "big-j", "big", "completed", error_message="note")])
    record = runs.get_record_metadata("late")
    assert record is not None and record.end_time is None  # the update sets it as given
    runs.log_records([Record("late", "big-j", "big", "completed", end_time=done)])
    assert runs.get_record_metadata("late").end_time == done  # type: ignore[union-attr]


def test_counts_given_at_the_end_are_checked_not_stored_over(runs: RunStore) -> None:
    runs.log_records(
        [Record(f"r{i}", "m0-j0", "m0", "completed" if i else "failed") for i in range(5)]
    )
    runs.log_master_job_end("m0", "completed", {"note": "ok"}, counts={"completed": 4, "total": 5})
    job = runs.get_master_job("m0")
    assert job is not None and job.summary == {"note": "ok"}
    assert (job.completed_record_count, job.failed_record_count) == (4, 1)
    runs.log_master_job_end("m1", "completed", None, counts={"completed": 9, "failed": 0})
    job = runs.get_master_job("m1")
    assert job is not None and job.completed_record_count == 0  # the kept count stands
    assert job.summary == {"count_mismatch": {"completed": {"reported": 9, "kept": 0}}}
    with pytest.raises(InvalidInput, match="unknown count"):
        runs.log_master_job_end("m2", "completed", counts={"bogus": 1})


def test_references_are_issued_not_invented(runs: RunStore) -> None:
    ref = runs.request_config_ref("m0")
    assert runs.save_request_config(ref, {"model": "x"}) == ref
    data_ref = runs.record_data_ref("r1")
    digest = runs.save_record_data(data_ref, "m0", "m0-j0", {"a": 1})
    assert runs.get_record_data(digest) == {"a": 1}
    assert runs.save_request_config(digest, {"model": "y"}) == digest  # a digest will do

    def stored() -> tuple[int, int]:
        with runs.db.read() as conn:
            return (
                conn.execute(select(func.count()).select_from(request_configs)).scalar_one(),
                conn.execute(select(func.count()).select_from(contents)).scalar_one(),
            )

    before = stored()
    for bad in ("/etc/passwd", "../escape", "file:///tmp/x", "request-config/../x", "cfg", ""):
        with pytest.raises(InvalidInput):
            runs.save_request_config(bad, {"model": "z"})
    for bad in ("/abs/path", "..", "a/b", "file://x", "s3://bucket/key", "record-data/"):
        with pytest.raises(InvalidInput):
            runs.save_record_data(bad, "m0", "m0-j0", {"never": "stored"})
    assert stored() == before
    with pytest.raises(InvalidInput):
        runs.request_config_ref("a/b")


def test_close_is_idempotent(tmp_path: Path, index_url: str | None) -> None:
    datakeep.init(tmp_path / "k", index=index_url).close()
    store = RunStore.open(tmp_path / "k")
    store.close()
    store.close()

    async def main() -> None:
        runs = AsyncRunStore.open(tmp_path / "k")
        await runs.close()
        await runs.close()  # quietly
        async with AsyncRunStore.open(tmp_path / "k") as again:
            await again.save_project(Project("p", "P"))
        await again.close()

    asyncio.run(main())


def test_async_listings_page_and_iterate(runs: RunStore) -> None:
    runs.log_records([Record(f"r{i:04d}", "m2-j1", "m2") for i in range(620)])

    async def main() -> None:
        store = AsyncRunStore(runs)
        page = await store.list_records(master_job_id="m2", limit=10)
        assert [r.record_uid for r in page][:2] == ["r0619", "r0618"] and page.next
        everything = await store.list_records(job_id="m2-j1", limit=None, order="oldest")
        assert isinstance(everything, AsyncIterator)
        assert [r.record_uid async for r in everything] == [f"r{i:04d}" for i in range(620)]
        jobs = await store.list_master_jobs("proj", limit=None)
        assert [j.master_job_id async for j in jobs] == ["m2", "m1", "m0"]
        assert [p.project_id for p in await store.list_projects()] == ["proj"]
        found = await store.find_execution_jobs("h0", master_job_id="m2")
        assert [j.job_id for j in found] == ["m2-j0"]
        assert [j.job_id for j in await store.list_execution_jobs("m0", order="oldest")] == [
            "m0-j0",
            "m0-j1",
        ]
        with pytest.raises(InvalidInput):
            await store.list_records(master_job_id="m2", limit=None, after="garbage")
        store._pool.shutdown()

    asyncio.run(main())


def test_a_keep_from_before_the_new_fields_opens_and_upgrades(
    tmp_path: Path, index_url: str | None
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from datakeep.index.migrate import _MIGRATIONS, HEAD, current_revision

    with RunStore(datakeep.init(tmp_path, index=index_url), owns_keep=True) as runs:
        runs.save_project(Project("p", "P"))
        runs.log_master_job_start(MasterJob("m", "p", creation_time=T0))
        runs.log_execution_job_start(ExecutionJob("j", "m"))
        runs.log_records([Record("r", "j", "m", "completed")])
        with runs.keep.db.engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, "0009_aliases")
            columns = {c["name"] for c in inspect(conn).get_columns("runs_master_jobs")}
            assert "storage_uri" not in columns
    with RunStore.open(tmp_path) as runs:
        with runs.db.read() as conn:
            assert current_revision(conn) == HEAD
        job = runs.get_master_job("m")
        assert job is not None and job.storage_uri is None and job.target_record_count is None
        assert runs.get_execution_job("j").produced_outputs_count == 0  # type: ignore[union-attr]
        record = runs.get_record_metadata("r")
        assert record is not None and record.end_time is None and record.status == "completed"
        runs.log_master_job_start(MasterJob("m", "p", storage_uri="s3://b/m", creation_time=T0))
        assert runs.get_master_job("m").storage_uri == "s3://b/m"  # type: ignore[union-attr]
