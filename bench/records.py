"""Record directories (issue 20).

* ``create`` + 3 small files saved + ``commit``, one process, on SQLite: records/s.
* ``find`` with a config filter over 1,000,000 records, a page of 100, on SQLite and
  PostgreSQL (the rows inserted in bulk, as ``create`` writes them).
* ``reindex`` of 100,000 committed records: their directories stored as ``commit`` stores
  them (the same files and tree format, written in bulk), the catalog rebuilt from them.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid as uuids

from datakeep.records import RecordStore, identity_of
from datakeep.records.schema import records
from datakeep.trees.format import TreeEntry, encode_tree

from .common import WORK, Row, fresh_keep, publish, table
from .index import postgres_schema

COMMITS = 2000
MILLION = 1_000_000
REINDEX = 100_000


def bench_commits(results: dict[str, float]) -> None:
    store = RecordStore(fresh_keep(WORK / "records-commits"), owns_keep=True)
    started = time.perf_counter()
    for i in range(COMMITS):
        run = store.create("train", {"i": i, "lr": 0.01})
        store.save_file(run, "config.json", {"i": i})
        store.save_file(run, "metrics.jsonl", {"step": 1, "loss": 0.5})
        store.save_file(run, "notes.txt", "converged")
        store.commit(run)
    results["commits_per_s"] = COMMITS / (time.perf_counter() - started)
    store.close()


def _rows(n: int) -> list[dict[str, object]]:
    now = time.time()
    rows = []
    for i in range(n):
        config = {"seed": i % 10, "model": {"depth": i % 7, "width": 64 * (1 + i % 4)}}
        rows.append(
            {
                "uuid": uuids.uuid4().hex,
                "kind": "train" if i % 2 else "eval",
                "identity": identity_of("train", config | {"n": i}),
                "parent": "",
                "predicate": "",
                "config": config,
                "label": None,
                "created_at": now + i * 1e-3,
                "hidden": False,
            }
        )
    return rows


def bench_find(results: dict[str, float]) -> None:
    rows = _rows(MILLION)
    for label, index in (("sqlite", None), ("postgres", "pg")):
        url = postgres_schema() if index else None
        if index and url is None:
            continue
        store = RecordStore(fresh_keep(WORK / f"records-find-{label}", url), owns_keep=True)
        with store.db.write() as conn:
            for i in range(0, len(rows), 20_000):
                conn.execute(records.insert(), rows[i : i + 20_000])
            if index:  # statistics, as autovacuum would gather them for a table this size
                conn.exec_driver_sql("ANALYZE records_records")
        where = {"seed": 3, "model.depth": ("gte", 4)}
        for _ in range(3):  # warm caches
            store.find(kind="train", config=where)
        times = []
        after = None
        for _ in range(20):
            started = time.perf_counter()
            page = store.find(kind="train", config=where, limit=100, after=after)
            times.append(time.perf_counter() - started)
            assert len(page.items) == 100
            after = page.next
        results[f"find_1m_{label}_ms"] = statistics.median(times) * 1000
        store.close()


def bench_reindex(results: dict[str, float]) -> None:
    keep = fresh_keep(WORK / "records-reindex")
    store = keep.store
    now = time.time()
    with store.leases.shared():
        for start in range(0, REINDEX, 5000):
            blobs: dict[str, bytes] = {}
            manifests: dict[str, bytes] = {}
            for i in range(start, start + 5000):
                uuid = uuids.uuid4().hex
                config = {"i": i, "lr": 0.01}
                header = {
                    "uuid": uuid,
                    "kind": "train",
                    "identity": identity_of("train", config),
                    "parent": None,
                    "predicate": "",
                    "label": None,
                    "created_at": now + i,
                }
                files = {
                    ".datakeep-record": b"datakeep.record@v1\n",
                    "id.json": json.dumps(header, indent=2, sort_keys=True).encode(),
                    "model.json": json.dumps(config, indent=2, sort_keys=True).encode(),
                    "updated_at": repr(now + i).encode(),
                    "metrics.jsonl": b'{"step": 1, "loss": 0.5}\n',
                }
                digests = {path: store.hash_into(data, blobs) for path, data in files.items()}
                entries = [
                    TreeEntry(p, "f", 0o644, len(files[p]), digests[p]) for p in sorted(files)
                ]
                store.hash_into(encode_tree(entries), manifests)
            store.record(store.write_packs(blobs))
            store.record(store.write_packs(manifests), kind="tree")
    records_store = RecordStore(keep, owns_keep=True)
    started = time.perf_counter()
    found = records_store.reindex()
    results["reindex_100k_s"] = time.perf_counter() - started
    assert found == REINDEX, found
    records_store.close()


TARGETS: list[Row] = [
    (
        "create + save 3 small files + commit, one process",
        ">= 1,000 records/s",
        lambda r: (f"{r['commits_per_s']:.0f} records/s", r["commits_per_s"] >= 1000),
    ),
    (
        "`find` with a config filter over 1,000,000 records (SQLite)",
        "<= 20 ms a page",
        lambda r: (f"{r['find_1m_sqlite_ms']:.2f} ms", r["find_1m_sqlite_ms"] <= 20),
    ),
    (
        "`find` with a config filter over 1,000,000 records (PostgreSQL)",
        "<= 20 ms a page",
        lambda r: (
            (f"{r['find_1m_postgres_ms']:.2f} ms", r["find_1m_postgres_ms"] <= 20)
            if "find_1m_postgres_ms" in r
            else ("not run (no PostgreSQL server)", False)
        ),
    ),
    (
        "`reindex` of 100,000 committed records",
        "<= 60 s",
        lambda r: (f"{r['reindex_100k_s']:.1f} s", r["reindex_100k_s"] <= 60),
    ),
]


def run() -> None:
    results: dict[str, float] = {}
    bench_commits(results)
    bench_find(results)
    bench_reindex(results)
    publish(
        "records",
        results,
        table(TARGETS, results, "Commits on SQLite; find on both indexes; reindex on SQLite."),
    )
