"""Run-record figures (issue 5), on SQLite.

* 100,000 record rows logged in batches of 1,000, against raw sqlite3 ``executemany`` of
  the same rows into the same table (a fresh keep's index) in the same run.
* 100,000 records with a 1 KiB JSON payload each, from 1,000 concurrent asyncio tasks.
* 10,000 records, one ``log_record_metadata`` call each.
* Count by status and first page of a master job with 1,000,000 records.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import statistics
import time
from typing import Any

from datakeep.runs import AsyncRunStore, ExecutionJob, MasterJob, Project, Record, RunStore

from .common import WORK, Row, clean, fresh_keep, publish, table

ROWS = 100_000
BATCH = 1000
STATUSES = ("completed", "failed", "filtered", "duplicate")


def new_store(name: str) -> RunStore:
    store = RunStore(fresh_keep(WORK / name), owns_keep=True)
    store.save_project(Project("bench", "bench"))
    store.log_master_job_start(MasterJob("master", "bench", status="running"))
    store.log_execution_job_start(ExecutionJob("job", "master", status="running"))
    return store


def make_records(n: int, prefix: str = "r") -> list[Record]:
    return [Record(f"{prefix}{i:08d}", "job", "master", STATUSES[i % 4]) for i in range(n)]


def raw_sqlite_baseline(rows: list[Record]) -> float:
    """The same rows through raw sqlite3 into the same table (a fresh keep's index, with
    its indexes and constraints, foreign keys on as datakeep runs them)."""
    new_store("raw-baseline").close()
    db = sqlite3.connect(WORK / "raw-baseline" / ".datakeep" / "index.sqlite", isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = NORMAL")
    now = int(time.time() * 1e6)
    tuples = [(r.record_uid, r.job_id, r.master_job_id, r.status, now, now) for r in rows]
    started = time.perf_counter()
    for i in range(0, len(tuples), BATCH):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO runs_records (record_uid, job_id, master_job_id, status, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            tuples[i : i + BATCH],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    clean(WORK / "raw-baseline")
    return elapsed


def bench_batches(results: dict[str, float]) -> None:
    """Three rounds, baseline and datakeep in turn, medians: this machine is noisy."""
    rows = make_records(ROWS)
    raw, ours = [], []
    for _ in range(3):
        raw.append(raw_sqlite_baseline(rows))
        with new_store("runs-batches") as store:
            started = time.perf_counter()
            for i in range(0, ROWS, BATCH):
                store.log_records(rows[i : i + BATCH])
            ours.append(time.perf_counter() - started)
            assert sum(store.count_records(master_job_id="master").values()) == ROWS
        clean(WORK / "runs-batches")
    results["raw_sqlite_100k_s"] = statistics.median(raw)
    results["log_100k_batches_s"] = statistics.median(ours)


def bench_async(results: dict[str, float]) -> None:
    payload = {"text": "x" * 990}  # about 1 KiB of JSON

    async def factory(store: RunStore) -> float:
        async with AsyncRunStore(store) as runs:
            queue = iter(range(ROWS))

            async def worker() -> None:
                for i in queue:
                    await runs.log_record(
                        Record(f"a{i:08d}", "job", "master", "completed"), payload
                    )

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(1000)))
            elapsed = time.perf_counter() - started
            assert (await runs.count_records(master_job_id="master"))["completed"] == ROWS
            return elapsed

    store = new_store("runs-async")
    results["async_100k_1kib_records_per_s"] = ROWS / asyncio.run(factory(store))
    clean(WORK / "runs-async")


def bench_single_calls(results: dict[str, float]) -> None:
    rows = make_records(10_000, "s")
    with new_store("runs-single") as store:
        started = time.perf_counter()
        for record in rows:
            store.log_record_metadata(record)
        results["single_calls_records_per_s"] = len(rows) / (time.perf_counter() - started)
    clean(WORK / "runs-single")


def bench_million(results: dict[str, float]) -> None:
    path = WORK / "runs-1m"
    marker = path / ".complete"
    if not marker.exists():
        with new_store("runs-1m") as store:
            rows = make_records(1_000_000, "m")
            for i in range(0, len(rows), 10_000):
                store.log_records(rows[i : i + 10_000])
        marker.write_text("")
    with RunStore.open(path) as store:
        for _ in range(3):  # warm the page cache and the statement cache
            store.count_records(master_job_id="master")
            store.list_records(master_job_id="master", limit=100)
        counts, pages = [], []
        for _ in range(20):
            started = time.perf_counter()
            assert sum(store.count_records(master_job_id="master").values()) == 1_000_000
            counts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert (
                len(store.list_records(master_job_id="master", status_filter=["failed"]).items)
                == 100
            )
            pages.append(time.perf_counter() - started)
        results["count_1m_ms"] = statistics.median(counts) * 1000
        results["first_page_1m_ms"] = statistics.median(pages) * 1000


WORKER_BATCHES, WORKER_BATCH, WORKER_SINGLES = 20, 500, 1000


def _worker(keep_path: str, worker: int, start: Any, done: Any) -> None:
    job = f"job-{worker}"
    with RunStore.open(keep_path) as store:
        store.log_execution_job_start(ExecutionJob(job, "master", status="running"))
        start.wait()
        began = time.perf_counter()
        for b in range(WORKER_BATCHES):
            batch = [Record(f"{job}-{b}-{i}", job, "master") for i in range(WORKER_BATCH)]
            store.log_records(batch, {r.record_uid: {"n": i} for i, r in enumerate(batch)})
        for i in range(WORKER_SINGLES):
            store.log_record_metadata(Record(f"{job}-single-{i}", job, "master", "completed"))
        done.put((began, time.perf_counter()))


def bench_workers(results: dict[str, float]) -> None:
    from .index import postgres_schema

    for label, index in (("sqlite", None), ("postgres", "pg")):
        url = postgres_schema() if index else None
        if index and url is None:
            continue
        path = WORK / "runs-workers"
        with RunStore(fresh_keep(path, url), owns_keep=True) as store:
            store.save_project(Project("bench", "bench"))
            store.log_master_job_start(MasterJob("master", "bench", status="running"))
        ctx = multiprocessing.get_context("spawn")
        start, done = ctx.Barrier(5), ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(str(path), w, start, done)) for w in range(4)]
        for w in workers:
            w.start()
        start.wait()
        spans = [done.get(timeout=600) for _ in workers]
        for w in workers:
            w.join()
        expected = 4 * (WORKER_BATCHES * WORKER_BATCH + WORKER_SINGLES)
        with RunStore.open(path) as store:
            counted = sum(store.count_records(master_job_id="master").values())
            listed, after = 0, None
            while True:
                page = store.list_records(master_job_id="master", limit=5000, after=after)
                listed += len(page.items)
                if page.next is None:
                    break
                after = page.next
        lost = expected - listed if counted == listed else expected
        wall = max(e for _, e in spans) - min(b for b, _ in spans)
        results[f"{label}_4_workers_lost"] = lost + sum(w.exitcode != 0 for w in workers)
        results[f"{label}_4_workers_records_per_s"] = expected / wall
        clean(path)


def _workers_row(label: str, name: str) -> Row:
    def check(r: dict[str, float]) -> tuple[str, bool]:
        if f"{label}_4_workers_lost" not in r:
            return "not run (no PostgreSQL server)", False
        lost = int(r[f"{label}_4_workers_lost"])
        rate = r[f"{label}_4_workers_records_per_s"]
        return (
            f"{'all succeeded, none lost' if not lost else f'{lost} lost'}; {rate:.0f} records/s",
            not lost,
        )

    return f"4 worker processes logging into one keep ({name})", "all succeed, nothing lost", check


TARGETS: list[Row] = [
    (
        "log 100,000 record rows in batches of 1,000",
        ">= 0.5x raw sqlite3 executemany",
        lambda r: (
            f"{r['log_100k_batches_s']:.2f} s = "
            f"{r['raw_sqlite_100k_s'] / r['log_100k_batches_s']:.2f}x raw sqlite3",
            r["raw_sqlite_100k_s"] / r["log_100k_batches_s"] >= 0.5,
        ),
    ),
    (
        "100,000 records with 1 KiB JSON each, async, 1,000 tasks",
        ">= 20,000 records/s",
        lambda r: (
            f"{r['async_100k_1kib_records_per_s']:.0f} records/s",
            r["async_100k_1kib_records_per_s"] >= 20_000,
        ),
    ),
    (
        "10,000 records, one call each",
        ">= 5,000 records/s",
        lambda r: (
            f"{r['single_calls_records_per_s']:.0f} records/s",
            r["single_calls_records_per_s"] >= 5_000,
        ),
    ),
    (
        "count by status, master job with 1M records",
        "<= 5 ms",
        lambda r: (f"{r['count_1m_ms']:.2f} ms", r["count_1m_ms"] <= 5),
    ),
    (
        "first page (100, status filter), master job with 1M records",
        "<= 5 ms",
        lambda r: (f"{r['first_page_1m_ms']:.2f} ms", r["first_page_1m_ms"] <= 5),
    ),
    _workers_row("sqlite", "SQLite"),
    _workers_row("postgres", "PostgreSQL"),
]


def run() -> None:
    results: dict[str, float] = {}
    bench_batches(results)
    bench_async(results)
    bench_single_calls(results)
    bench_million(results)
    bench_workers(results)
    baselines = (
        f"Baseline in the same run: raw sqlite3 executemany of the 100,000 rows "
        f"{results['raw_sqlite_100k_s']:.2f} s."
    )
    publish("runs", results, table(TARGETS, results, baselines))
