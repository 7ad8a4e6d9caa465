"""Record directories (issue 20).

* ``create`` + 3 small files saved + ``commit``, one process, on SQLite: records/s, beside
  the same work done without datakeep (``raw_commits``: the floor this machine sets).
* ``find`` with a config filter over 1,000,000 records, a page of 100, on SQLite and
  PostgreSQL (the rows inserted in bulk, as ``create`` writes them).
* ``reindex`` of 100,000 committed records: their directories stored as ``commit`` stores
  them (the same files and tree format, written in bulk), the catalog rebuilt from them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time
import uuid as uuids
from pathlib import Path

import blake3

from datakeep.records import RecordStore, identity_of
from datakeep.records.schema import records
from datakeep.trees.format import TreeEntry, encode_tree

from .common import WORK, Row, fresh_keep, paired, publish, table
from .index import postgres_schema

COMMITS = 2000
MILLION = 1_000_000
REINDEX = 100_000


def _commits(store: RecordStore) -> None:
    for i in range(COMMITS):
        run = store.create("train", {"i": i, "lr": 0.01})
        store.save_file(run, "config.json", {"i": i})
        store.save_file(run, "metrics.jsonl", {"step": 1, "loss": 0.5})
        store.save_file(run, "notes.txt", "converged")
        store.commit(run)


def _write(path: str, data: bytes, sync: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    os.close(fd)


def _replace(path: str, data: bytes, sync: bool = False) -> None:
    _write(f"{path}.tmp", data, sync)
    os.rename(f"{path}.tmp", path)


def raw_commits(keep_dir: Path) -> None:
    """The same work with no datakeep code, as a reference: each record's row inserted
    (a transaction), its directory made with its header files in place and the sentinel
    renamed in last, each saved file synced (temp + fsync + rename; the line appended and
    synced), then at commit ``updated_at`` written, every file read and hashed, a manifest
    made, and the files, the manifest and the pointer recorded inline in one transaction:
    the standard library's ``os`` and ``sqlite3``, and ``blake3``, into a fresh keep."""
    db = sqlite3.connect(keep_dir / ".datakeep" / "index.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    base = keep_dir / ".datakeep" / "records"
    base.mkdir()
    for i in range(COMMITS):
        uuid, config, now = uuids.uuid4().hex, json.dumps({"i": i, "lr": 0.01}), time.time()
        identity = "blake3:" + blake3.blake3(f"train{config}".encode()).hexdigest()
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO records_records (uuid, kind, identity, parent, predicate, config, "
            "created_at, hidden) VALUES (?, 'train', ?, '', '', ?, ?, 0) ON CONFLICT DO NOTHING",
            (uuid, identity, config, now),
        )
        db.execute("COMMIT")
        root = f"{base}/{uuid}"
        os.mkdir(root)
        _write(f"{root}/id.json", json.dumps({"uuid": uuid, "identity": identity}).encode())
        _write(f"{root}/model.json", config.encode())
        _replace(f"{root}/.datakeep-record", b"datakeep.record@v1\n")
        _replace(f"{root}/config.json", json.dumps({"i": i}).encode(), sync=True)
        fd = os.open(f"{root}/metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, b'{"step": 1, "loss": 0.5}\n')
        os.fsync(fd)
        os.close(fd)
        _replace(f"{root}/notes.txt", b"converged", sync=True)
        _replace(f"{root}/updated_at", repr(time.time()).encode())
        blobs = {}
        for name in sorted(os.listdir(root)):
            with open(f"{root}/{name}", "rb") as f:
                blobs[name] = f.read()
        digests = {n: "blake3:" + blake3.blake3(b).hexdigest() for n, b in blobs.items()}
        manifest = json.dumps([[n, digests[n], len(blobs[n])] for n in sorted(blobs)]).encode()
        tree = "blake3:" + blake3.blake3(manifest).hexdigest()
        rows = [(digests[n], blobs[n], "blob") for n in blobs] + [(tree, manifest, "tree")]
        db.execute("BEGIN IMMEDIATE")
        for digest, data, kind in rows:
            if db.execute(
                "INSERT INTO contents VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING digest",
                (digest, len(data), kind, now),
            ).fetchall():
                db.execute("INSERT INTO inline_blobs VALUES (?, ?)", (digest, data))
                db.execute(
                    "INSERT INTO placements VALUES (?, 'primary', 'datakeep.inline@v1', ?)",
                    (digest, '{"key": "@inline"}'),
                )
        db.execute(
            "UPDATE records_records SET tree = ?, updated_at = ? WHERE uuid = ?", (tree, now, uuid)
        )
        db.execute("COMMIT")
    db.close()


def bench_commits(results: dict[str, float]) -> None:
    """Datakeep and the raw reference back to back, three rounds, each on a fresh keep."""
    raw_keep, ours_keep = WORK / "records-commits-raw", WORK / "records-commits"
    stores: list[RecordStore] = []

    def new_store() -> None:
        stores.append(RecordStore(fresh_keep(ours_keep), owns_keep=True))

    raw_s, ours_s, ratio = paired(
        3,
        lambda: raw_commits(raw_keep),
        lambda: _commits(stores[-1]),
        lambda: fresh_keep(raw_keep).close(),
        new_store,
    )
    for store in stores:
        store.close()
    results["commits_per_s"] = COMMITS / ours_s
    results["raw_commits_per_s"] = COMMITS / raw_s
    results["commits_vs_raw"] = 1 / ratio  # our throughput as a share of the raw one's


def _rows(n: int) -> list[dict[str, object]]:
    now = time.time()
    rows: list[dict[str, object]] = []
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
        table(
            TARGETS,
            results,
            "Commits on SQLite, medians of 3 rounds; the same work without datakeep "
            f"(`raw_commits`: the floor of this machine, fsyncs included) "
            f"{results['raw_commits_per_s']:.0f} records/s, datakeep at "
            f"{results['commits_vs_raw']:.2f}x of it. Find on both indexes; reindex on SQLite.",
        ),
    )
