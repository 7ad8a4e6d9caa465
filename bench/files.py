"""Verified file stores (issue 19), on SQLite.

* 10,000 files of 4 KiB added one call each, paired with ``cp -r`` of the same directory
  (three back-to-back rounds, the median of the rounds' ratios of throughput).
* A 1 GiB file fetched (a fresh copy, MD5, SHA-256 and BLAKE3 all checked), paired with
  ``md5sum`` of the stored file in the same rounds.
* 4 processes adding 1,000 files each into one store: all present, nothing orphaned.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import blake3

from datakeep.files import FileStore

from .common import WORK, Row, clean, fresh_keep, generate, paired, publish, table

SMALL = 10_000
WORKERS, PER_WORKER = 4, 1000
GIB = 1 << 30


def bench_small_adds(results: dict[str, float]) -> None:
    source = WORK / "files-small"
    generate(source, dirs=100, per_dir=SMALL // 100, size=4096, large=0, seed=19)
    paths = sorted(source.glob("dir*/*.bin"))
    rounds = iter(range(10))
    store: FileStore | None = None

    def new_store() -> None:
        nonlocal store
        store = FileStore.create(fresh_keep(WORK / f"files-adds-{next(rounds)}"), "bench")

    def add_all() -> None:
        assert store is not None
        for path in paths:
            store.add_file("S1", path.parent.name, path)

    def copy() -> None:
        subprocess.run(["cp", "-r", str(source), str(WORK / "files-cp")], check=True)

    cp_s, add_s, ratio = paired(3, copy, add_all, lambda: clean(WORK / "files-cp"), new_store)
    assert store is not None and len(store.manifest.list_resources()) == SMALL
    store.keep.close()
    raw_keep = WORK / "files-raw"
    _, raw_s, raw_ratio = paired(
        3,
        copy,
        lambda: raw_adds(paths, raw_keep),
        lambda: clean(WORK / "files-cp"),
        lambda: fresh_keep(raw_keep).close(),
    )
    results["raw_add_10k_s"] = raw_s
    results["raw_add_10k_vs_cp"] = 1 / raw_ratio
    results["cp_10k_s"] = cp_s
    results["add_10k_s"] = add_s
    results["add_10k_vs_cp"] = 1 / ratio  # throughput: cp's time over ours


def raw_adds(paths: list[Path], keep_dir: Path) -> None:
    """The same work without datakeep, as a reference: each file read, hashed three ways
    and recorded (content, its bytes, its placement, its name) in a transaction of its own,
    with raw sqlite3 into a fresh keep's index (the same tables and indexes)."""
    db = sqlite3.connect(keep_dir / ".datakeep" / "index.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("INSERT INTO files_stores VALUES ('raw', 0)")
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        digest = "blake3:" + blake3.blake3(data).hexdigest()
        md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        db.execute("BEGIN IMMEDIATE")
        new = db.execute(
            "INSERT INTO contents VALUES (?, ?, 'blob', 0) ON CONFLICT DO NOTHING RETURNING digest",
            (digest, len(data)),
        ).fetchall()
        if new:
            db.execute("INSERT INTO inline_blobs VALUES (?, ?)", (digest, data))
            db.execute(
                "INSERT INTO placements VALUES (?, 'primary', 'datakeep.inline@v1', ?)",
                (digest, '{"key": "@inline"}'),
            )
        db.execute(
            "INSERT INTO files_entries VALUES (?, 'raw', ?, ?, ?, ?, ?, ?, 0)",
            (uuid.uuid4().hex, f"S1/{path.parent.name}", path.name, digest, len(data), md5, sha256),
        )
        db.execute("COMMIT")
    db.close()


def bench_large_fetch(results: dict[str, float]) -> None:
    big = WORK / "files-1gib.bin"
    if not big.exists() or big.stat().st_size != GIB:
        with open(big, "wb") as f:
            for _ in range(GIB // (64 << 20)):
                f.write(bytes(range(256)) * (1 << 18))
    store = FileStore.create(fresh_keep(WORK / "files-large"), "bench")
    added = store.add_file("S1", "Prod0", big)
    blob = store.keep.store.files.path_of(store.keep.store.key_of(added["digest"]))  # type: ignore[union-attr]
    outputs = iter(range(10))

    def md5sum() -> None:
        subprocess.run(["md5sum", str(blob)], check=True, capture_output=True)

    def fetch() -> None:
        out = WORK / f"files-fetch-{next(outputs)}"
        clean(out)
        store.fetch_file("S1", "Prod0", big.name, hash=added["hash"], to=out)

    md5_s, fetch_s, ratio = paired(3, md5sum, fetch)
    store.keep.close()
    results["md5sum_1gib_s"] = md5_s
    results["fetch_1gib_s"] = fetch_s
    results["fetch_1gib_vs_md5sum"] = ratio


def _worker(root: str, worker: int) -> None:
    with FileStore.open(root) as store:
        for i in range(PER_WORKER):
            path = Path(root) / f"src-{worker}-{i}"
            path.write_bytes(f"worker {worker} file {i} ".encode() * 100)
            store.add_file("S1", f"worker{worker}", path)


def bench_workers(results: dict[str, float]) -> None:
    root = WORK / "files-workers"
    store = FileStore.create(fresh_keep(root), "bench")
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(str(root), w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    results["workers_s"] = time.perf_counter() - started
    results["workers_failed"] = sum(p.exitcode != 0 for p in procs)
    results["workers_present"] = len(store.manifest.list_resources("S1"))
    results["workers_orphans"] = len(store.keep.fsck().orphans)
    store.keep.close()


TARGETS: list[Row] = [
    (
        "add 10,000 files of 4 KiB, one call each, one process",
        ">= 0.5x `cp` of the same files",
        lambda r: (
            f"{r['add_10k_s']:.2f} s = {r['add_10k_vs_cp']:.2f}x cp -r (the same work "
            f"without datakeep: {r['raw_add_10k_s']:.2f} s = {r['raw_add_10k_vs_cp']:.2f}x)",
            r["add_10k_vs_cp"] >= 0.5,
        ),
    ),
    (
        "fetch a 1 GiB file (verified, all three hashes)",
        "<= 1.2x `md5sum` of it",
        lambda r: (
            f"{r['fetch_1gib_s']:.2f} s = {r['fetch_1gib_vs_md5sum']:.2f}x md5sum",
            r["fetch_1gib_vs_md5sum"] <= 1.2,
        ),
    ),
    (
        "4 processes adding 1,000 files each into one store",
        "all 4,000 present, nothing orphaned",
        lambda r: (
            f"{r['workers_present']:.0f} present, {r['workers_orphans']:.0f} orphaned, "
            f"{r['workers_failed']:.0f} failed; "
            f"{WORKERS * PER_WORKER / r['workers_s']:.0f} files/s",
            r["workers_present"] == WORKERS * PER_WORKER
            and not r["workers_orphans"]
            and not r["workers_failed"],
        ),
    ),
]


def run() -> None:
    results: dict[str, float] = {}
    bench_small_adds(results)
    bench_large_fetch(results)
    bench_workers(results)
    baselines = (
        f"Baselines in the same run: `cp -r` of the 10,000 files {results['cp_10k_s']:.2f} s; "
        f"`md5sum` of the 1 GiB file {results['md5sum_1gib_s']:.2f} s."
    )
    publish("files", results, table(TARGETS, results, baselines))
