"""Shared-index figures (issue 4): many writers on SQLite and PostgreSQL, fsck, gc.

* Writers: N processes each put 10,000 distinct 4 KiB blobs (one ``put`` call each, so
  each is durable when it returns) into one keep; throughput against one process doing
  the same in the same run.
* fsck of D1 against ``verify --all`` of the same keep.
* gc of a keep with 1M contents and nothing to sweep: 500,000 tagged blobs and 500,000
  files of 50 tagged trees, all older than the grace period, each a real blob file.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

import datakeep
from datakeep.content import Written
from datakeep.index import contents
from datakeep.trees import TreeEntry, encode_tree

from .common import WORK, Row, at_most, clean, fresh_keep, generate, median_of, publish, table
from .machine import Usage, usage
from .raw_writer import raw_writer

BLOBS_PER_WRITER = 10_000
POSTGRES_URL = os.environ.get(
    "DATAKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
GC_CONTENTS = 1_000_000
WRITER_ROUNDS = 3
GC_TREES = 50


def _writer(
    keep_path: str, index: str | None, raw: bool, seed: int, start: Any, times: Any
) -> None:
    rng = random.Random(seed)
    payloads = [rng.randbytes(4096) for _ in range(BLOBS_PER_WRITER)]
    if raw:
        start.wait()
        began = time.perf_counter()
        raw_writer(keep_path, index, payloads)
        times.put((began, time.perf_counter()))
        return
    with datakeep.open(keep_path) as keep:
        start.wait()
        began = time.perf_counter()
        for data in payloads:
            keep.put(data)
        times.put((began, time.perf_counter()))


def writers_throughput(
    index: str | None, processes: int, raw: bool = False
) -> tuple[float, Usage | None]:
    """Blobs per second of ``processes`` writers putting into one fresh keep: datakeep's
    ``put``, or the same work done without datakeep (``raw``, see raw_writer.py); and what
    the CPUs and the disk were busy with meanwhile."""
    path = WORK / "writers-keep"
    fresh_keep(path, index).close()
    ctx = multiprocessing.get_context("spawn")
    start, times = ctx.Barrier(processes + 1), ctx.Queue()
    children = [
        ctx.Process(target=_writer, args=(str(path), index, raw, 1000 + n, start, times))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    start.wait()  # every writer has imported, opened the keep and made its data
    before = usage(path)
    spans: list[tuple[float, float]] = [times.get(timeout=600) for _ in children]
    after = usage(path)
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {child.exitcode}")
    with datakeep.open(path) as keep:
        stored = sum(1 for _ in keep.store.iter_all())
    if stored != processes * BLOBS_PER_WRITER:
        raise RuntimeError(f"{stored} blobs stored, not {processes * BLOBS_PER_WRITER}")
    clean(path)
    wall = max(end for _, end in spans) - min(began for began, _ in spans)
    spent = None if before is None or after is None else after - before
    return processes * BLOBS_PER_WRITER / wall, spent


def postgres_schema() -> str | None:
    """A fresh schema on the benchmark PostgreSQL server, or None if it is not running."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            schema = f"bench_{secrets.token_hex(4)}"
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:
        print(f"PostgreSQL benchmarks skipped: {exc}")
        return None
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def bench_writers(results: dict[str, float]) -> None:
    """Each round runs one writer and then four, with datakeep and without, back to back:
    the machine's cost of an fsync swings by 2x within minutes, and only runs made
    together share a state. A ratio is the median of the rounds' ratios.

    Beside each rate: the CPU time per put (all processes, the kernel and PostgreSQL's
    server included) and how busy the CPUs and the disk were; from those, the ratio four
    writers would reach at the same cost per put if they kept every CPU busy, and if
    they never left the disk idle (a bound only where the disk does one thing at once)."""
    cpus = os.cpu_count() or 1
    for label, index in (("sqlite", None), ("postgres", "pg")):
        rounds: dict[str, list[float]] = {}
        for _ in range(WRITER_ROUNDS):
            for raw in (False, True):
                for processes in (1, 4):
                    url = postgres_schema() if index else None
                    if index and url is None:
                        return
                    key = f"{label}{'_raw' if raw else ''}_writers{processes}"
                    rate, spent = writers_throughput(url, processes, raw)
                    rounds.setdefault(f"{key}_blobs_per_s", []).append(rate)
                    if spent is None:
                        continue
                    wall = processes * BLOBS_PER_WRITER / rate
                    cpu_per_put = spent.cpu_busy_s / (processes * BLOBS_PER_WRITER)
                    rounds.setdefault(f"{key}_cpu_us_per_put", []).append(cpu_per_put * 1e6)
                    rounds.setdefault(f"{key}_cpu_busy", []).append(
                        spent.cpu_busy_s / (cpus * wall)
                    )
                    rounds.setdefault(f"{key}_disk_busy", []).append(spent.disk_busy_s / wall)
        for kind in ("", "_raw"):
            prefix = f"{label}{kind}_writers"
            one, four = rounds[f"{prefix}1_blobs_per_s"], rounds[f"{prefix}4_blobs_per_s"]
            results[f"{prefix}4_ratio"] = statistics.median(
                f / o for f, o in zip(four, one, strict=True)
            )
            if f"{prefix}4_cpu_us_per_put" in rounds:
                cpu, disk = rounds[f"{prefix}4_cpu_us_per_put"], rounds[f"{prefix}4_disk_busy"]
                results[f"{prefix}4_cpu_ceiling_ratio"] = statistics.median(
                    cpus * 1e6 / c / o for c, o in zip(cpu, one, strict=True)
                )
                results[f"{prefix}4_disk_ceiling_ratio"] = statistics.median(
                    f / d / o for f, d, o in zip(four, disk, one, strict=True)
                )
        for key, values in rounds.items():
            results[key] = statistics.median(values)


def bench_fsck(results: dict[str, float]) -> None:
    data = WORK / "d1"
    generate(data, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    path = WORK / "fsck-keep"
    with fresh_keep(path) as keep:
        keep.put_tree(data)
        results["d1_verify_all_s"] = median_of(3, keep.verify_many)
        results["d1_fsck_s"] = median_of(3, keep.fsck)
    clean(path)


def build_gc_keep(path: Path) -> None:
    """1M contents, every one live and old; built once and kept in bench/work."""
    marker = path / ".complete"
    if marker.exists():
        return
    with fresh_keep(path) as keep:
        store = keep.store
        per_tree = GC_CONTENTS // 2 // GC_TREES
        for part in range(GC_CONTENTS // per_tree):
            batch = [
                store.write_bytes(f"gc benchmark content {part}.{i}".encode())
                for i in range(per_tree)
            ]
            if part % 2 == 0:
                store.record(batch, tags={"kind": "tagged"})
                continue
            store.record(batch)
            entries = [
                TreeEntry(f"f{i:05d}", "f", 0o644, w.size, w.digest) for i, w in enumerate(batch)
            ]
            tree: Written = store.write_bytes(encode_tree(entries))
            store.record([tree], tags={"tree": str(part)}, kind="tree")
        with keep.db.write() as conn:
            conn.execute(update(contents).values(created_at=time.time() - 7 * 86400))
    marker.write_text("")


def bench_gc(results: dict[str, float]) -> None:
    path = WORK / "gc-1m"
    build_gc_keep(path)
    with datakeep.open(path) as keep:
        report = keep.gc()
        if report.swept or report.orphans or report.live != GC_CONTENTS + GC_TREES:
            raise RuntimeError(f"gc benchmark keep is not what it should be: {report}")
        results["gc_1m_s"] = median_of(3, keep.gc)


def _versus(label: str, measure: str, limit: float) -> Row:
    four, one = f"{label}_writers4_blobs_per_s", f"{label}_writers1_blobs_per_s"
    raw_four, raw_one = f"{label}_raw_writers4_blobs_per_s", f"{label}_raw_writers1_blobs_per_s"

    def check(r: dict[str, float]) -> tuple[str, bool]:
        if four not in r:
            return "not run (no PostgreSQL server)", False
        ratio = r.get(f"{label}_writers4_ratio", r[four] / r[one])
        raw_ratio = r.get(f"{label}_raw_writers4_ratio", r[raw_four] / r[raw_one])
        cpu, disk = (r.get(f"{label}_writers4_{b}_ceiling_ratio") for b in ("cpu", "disk"))
        bounds = (
            ""
            if cpu is None or disk is None
            else (
                f"; at this cost per put, every CPU busy: {cpu:.2f}x, the disk never idle: "
                f"{disk:.2f}x"
            )
        )
        return (
            f"{r[four]:.0f} blobs/s = {ratio:.2f}x one process (the same work without "
            f"datakeep: {raw_ratio:.2f}x{bounds})",
            ratio >= limit,
        )

    return measure, f">= {limit}x one process", check


def _usage_line(r: dict[str, float]) -> str:
    """CPU per put and how busy the CPUs and the disk were, at one and four writers."""
    parts = []
    for label, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        for kind, who in (("", "datakeep"), ("_raw", "without datakeep")):
            one, four = f"{label}{kind}_writers1", f"{label}{kind}_writers4"
            if f"{four}_cpu_us_per_put" not in r:
                continue
            parts.append(
                f"{name}, {who}: {r[f'{one}_cpu_us_per_put']:.0f} and "
                f"{r[f'{four}_cpu_us_per_put']:.0f} us of CPU per put, CPUs "
                f"{100 * r[f'{one}_cpu_busy']:.0f}% and {100 * r[f'{four}_cpu_busy']:.0f}% "
                f"busy, disk {100 * r[f'{one}_disk_busy']:.0f}% and "
                f"{100 * r[f'{four}_disk_busy']:.0f}% (bounds for four: "
                f"{r[f'{four}_cpu_ceiling_ratio']:.2f}x and {r[f'{four}_disk_ceiling_ratio']:.2f}x)"
            )
    if not parts:
        return ""
    return " At one and four writers (all processes, kernel and server): " + "; ".join(parts) + "."


TARGETS: list[Row] = [
    _versus("sqlite", "4 processes x 10,000 puts, one SQLite keep", 2.0),
    _versus("postgres", "4 processes x 10,000 puts, PostgreSQL index", 3.0),
    (
        "fsck of D1",
        "<= 1.5x verify --all",
        lambda r: (
            f"{r['d1_fsck_s']:.2f} s = {r['d1_fsck_s'] / r['d1_verify_all_s']:.2f}x verify",
            r["d1_fsck_s"] <= 1.5 * r["d1_verify_all_s"],
        ),
    ),
    at_most("gc_1m_s", "gc of 1M contents, nothing to sweep", 10),
]


def run() -> None:
    results: dict[str, float] = {}
    bench_writers(results)
    bench_fsck(results)
    bench_gc(results)
    r = results
    baselines = (
        f"Baselines in the same run: one writer {r['sqlite_writers1_blobs_per_s']:.0f} "
        f"blobs/s on SQLite, {r.get('postgres_writers1_blobs_per_s', 0):.0f} on "
        f"PostgreSQL; the same work without datakeep (bench/raw_writer.py: os, sqlite3, "
        f"psycopg) {r['sqlite_raw_writers1_blobs_per_s']:.0f} and "
        f"{r['sqlite_raw_writers4_blobs_per_s']:.0f} blobs/s at 1 and 4 processes on SQLite, "
        f"{r.get('postgres_raw_writers1_blobs_per_s', 0):.0f} and "
        f"{r.get('postgres_raw_writers4_blobs_per_s', 0):.0f} on PostgreSQL; "
        f"verify --all of D1 {r['d1_verify_all_s']:.2f} s."
    ) + _usage_line(r)
    publish("index", results, table(TARGETS, results, baselines))
