"""Workspaces (datakeep.workspaces): D1 as one resource (role ``source-data``).

* First snapshot of D1, paired with ``cp -r`` of D1: each round makes a fresh workspace,
  ``cp -r`` copies D1 into it (the baseline, timed), the copy becomes the resource and the
  snapshot is timed; three rounds back to back, the median of the rounds' ratios.
* Snapshot after one 4 KiB file changed, and ``status()`` of the unchanged resource:
  medians of three runs, in the workspace of the last round, once its files are older
  than the stat cache's racy window (as data is that was not written seconds ago).
* Restore after the resource directory is deleted (moved aside: see ``clean()``), by
  copy, paired with ``cp -r`` of D1 like the first snapshot; by hard link, median of three.
* Push of the workspace (one snapshot of D1) to S3 (moto's server on loopback, as in
  ``bench/remotes.py``), paired with one boto3 ``put_object`` per file of the same
  directory into a fresh bucket.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from datakeep.trees.statcache import RACY_NS
from datakeep.workspaces import Workspace

from .common import (
    WORK,
    Row,
    at_most,
    clean,
    cp_r,
    generate,
    paired,
    publish,
    table,
    timed,
    versus_cp,
)
from .remotes import MotoServer, files_of

ROUNDS = 3
# one PUT per file of D1 takes 70-95 s against moto here: one round, as bench/remotes.py
# does (the ratio it quotes has been 0.08-0.09x against a target of 0.3x)
S3_ROUNDS = 1
RESOURCE = "d1"


def recorded(fn: Callable[[], object], into: list[float]) -> Callable[[], None]:
    """``fn``, its time appended to ``into`` (each round's figure, beside paired()'s medians)."""

    def run() -> None:
        started = time.perf_counter()
        fn()
        into.append(time.perf_counter() - started)

    return run


def keep_rounds(results: dict[str, float], key: str, times: list[float]) -> None:
    for n, seconds in enumerate(times, start=1):
        results[f"{key}_r{n}"] = seconds


def put_per_file(server: MotoServer, bucket: str, root: Path, files: list[Path]) -> None:
    client = server.client()
    for f in files:
        client.put_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=str(f.relative_to(root)), Body=f.read_bytes()
        )


def bench_first_snapshot(results: dict[str, float], data: Path) -> Workspace:
    """The paired rounds; the last round's workspace, with its one snapshot "d1"."""
    made: list[Workspace] = []
    cp_times: list[float] = []
    snap_times: list[float] = []

    def new_workspace() -> None:
        n = len(made)
        root = WORK / f"ws-{n}"
        clean(root)
        made.append(Workspace.init(root, name=f"bench{n}"))

    def copy() -> None:
        cp_r(data, made[-1].root / RESOURCE)

    results["d1_cp_r_s"], results["snapshot_d1_s"], results["snapshot_d1_s_ratio"] = paired(
        ROUNDS,
        recorded(copy, cp_times),
        recorded(lambda: made[-1].snapshot("d1"), snap_times),
        new_workspace,
        lambda: made[-1].add_resource(RESOURCE, "source-data", RESOURCE),
    )
    keep_rounds(results, "d1_cp_r_s", cp_times)
    keep_rounds(results, "snapshot_d1_s", snap_times)
    for ws in made[:-1]:
        ws.close()
        clean(ws.root)
    return made[-1]


def bench_push(results: dict[str, float], ws: Workspace, data: Path) -> None:
    files = files_of(data)
    base_times: list[float] = []
    push_times: list[float] = []
    rounds = iter(range(S3_ROUNDS))
    current: list[int] = []
    server = MotoServer()
    try:

        def new_bucket() -> None:
            current.append(next(rounds))
            server.bucket(f"baseline-{current[-1]}")

        def new_remote() -> None:
            n = current[-1]
            server.bucket(f"ws-{n}")
            ws.keep.add_remote(f"s3-{n}", f"s3://ws-{n}/{ws.name}", server.url)

        put_s, push_s, ratio = paired(
            S3_ROUNDS,
            recorded(
                lambda: put_per_file(server, f"baseline-{current[-1]}", data, files), base_times
            ),
            recorded(lambda: ws.push(f"s3-{current[-1]}"), push_times),
            new_bucket,
            new_remote,
        )
        results["put_per_file_s"], results["push_d1_s3_s"], results["push_d1_s3_s_ratio"] = (
            put_s,
            push_s,
            ratio,
        )
        keep_rounds(results, "put_per_file_s", base_times)
        keep_rounds(results, "push_d1_s3_s", push_times)
        results["noop_push_d1_s3_s"] = timed(lambda: ws.push(f"s3-{current[-1]}"))
    finally:
        server.stop()
    for n in current:
        ws.keep.remove_remote(f"s3-{n}")


def change_one_file(ws: Workspace, i: int) -> None:
    target = ws.root / RESOURCE / f"dir{i:03d}" / "file0000.bin"
    target.write_bytes(random.Random(100 + i).randbytes(4096))


def settle() -> None:
    """Wait until the last change is older than the stat cache's racy window."""
    time.sleep(RACY_NS / 1e9 + 0.5)


def bench_changes(results: dict[str, float], ws: Workspace) -> None:
    # D1 as it is once its files have settled: the files `cp -r` wrote within the stat
    # cache's racy window before the first snapshot are hashed once more (untimed), and the
    # directory's fingerprint is remembered; then a snapshot of it unchanged (the same
    # snapshot, one more tag) and status, which answers from the fingerprint
    settle()
    ws.snapshot("settled")
    results["snapshot_unchanged_s"] = timed(lambda: ws.snapshot("unchanged"))
    times = [timed(lambda: assert_unchanged(ws)) for _ in range(ROUNDS)]
    keep_rounds(results, "status_unchanged_s", times)
    results["status_unchanged_s"] = statistics.median(times)

    times = []
    for i in range(ROUNDS):
        change_one_file(ws, i)
        before = ws.state.head
        times.append(timed(partial(ws.snapshot, f"changed-{i}")))
        assert ws.state.head != before
    keep_rounds(results, "snapshot_one_changed_s", times)
    results["snapshot_one_changed_s"] = statistics.median(times)

    # status right after a snapshot taken within the racy window of its change: the stat
    # cache has not remembered the directory's fingerprint, each file is looked up
    times = [timed(lambda: assert_unchanged(ws)) for _ in range(ROUNDS)]
    keep_rounds(results, "status_after_change_s", times)
    results["status_after_change_s"] = statistics.median(times)


def assert_unchanged(ws: Workspace) -> None:
    changes = ws.status()
    assert not changes, changes


def bench_restore(results: dict[str, float], ws: Workspace, data: Path) -> None:
    resource = ws.root / RESOURCE
    copy = WORK / "ws-cp"
    cp_times: list[float] = []
    restore_times: list[float] = []
    # the resource's directory is gone: status lists every file as removed, and restore
    # refuses without force
    results["restore_cp_r_s"], results["restore_d1_copy_s"], results["restore_d1_copy_s_ratio"] = (
        paired(
            ROUNDS,
            recorded(lambda: cp_r(data, copy), cp_times),
            recorded(lambda: ws.restore("d1", force=True), restore_times),
            lambda: clean(copy),
            lambda: clean(resource),
        )
    )
    clean(copy)
    keep_rounds(results, "restore_cp_r_s", cp_times)
    keep_rounds(results, "restore_d1_copy_s", restore_times)
    # the files a restore writes are unknown to the stat cache: the first status hashes them
    results["status_after_restore_s"] = timed(lambda: assert_unchanged(ws))

    times = []
    for _ in range(ROUNDS):
        clean(resource)
        times.append(timed(lambda: ws.restore("d1", link="hardlink", force=True)))
    keep_rounds(results, "restore_d1_hardlink_s", times)
    results["restore_d1_hardlink_s"] = statistics.median(times)
    # hard-linked files share the keep's read-only blobs: status should still be clean,
    # and a snapshot of them should be the snapshot restored
    found = ws.status().get(RESOURCE)
    results["status_after_hardlink_changed"] = 0 if found is None else len(found.changed)
    restored = ws.find_snapshot("d1").hash
    results["snapshot_after_hardlink_same"] = float(ws.snapshot("after-hardlink") == restored)
    clean(resource)


def push_row(r: dict[str, float]) -> tuple[str, bool]:
    ratio = r["push_d1_s3_s_ratio"]
    return f"{r['push_d1_s3_s']:.2f} s = {ratio:.2f}x one PUT per file", ratio <= 0.3


TARGETS: list[Row] = [
    versus_cp("snapshot_d1_s", "first snapshot of D1", 1.3),
    at_most("snapshot_one_changed_s", "snapshot after one file changed", 0.3),
    at_most(
        "status_unchanged_s",
        "`status()` of unchanged D1",
        0.3,
        " (right after a snapshot of a fresh change: {status_after_change_s:.3f} s)",
    ),
    versus_cp("restore_d1_copy_s", "restore of deleted D1, copy (verified)", 1.1, "restore_cp_r_s"),
    at_most("restore_d1_hardlink_s", "restore of deleted D1, hardlink (verified)", 1.0),
    ("push of D1 to S3", "<= 0.3x one PUT per file", push_row),
]


def run() -> None:
    data = WORK / "d1"
    generate(data, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    results: dict[str, float] = {}
    started = time.perf_counter()
    ws = bench_first_snapshot(results, data)
    try:
        bench_push(results, ws, data)
        bench_changes(results, ws)
        bench_restore(results, ws, data)
    finally:
        ws.close()
    clean(ws.root)
    results["suite_s"] = time.perf_counter() - started
    r = results

    def each(key: str, rounds: int = ROUNDS) -> str:
        return ", ".join(f"{r[f'{key}_r{n}']:.2f}" for n in range(1, rounds + 1))

    notes = (
        f"Baselines in the same run: `cp -r` of D1 {r['d1_cp_r_s']:.2f} s beside the "
        f"snapshots (rounds: {each('d1_cp_r_s')} s; snapshots {each('snapshot_d1_s')} s), "
        f"{r['restore_cp_r_s']:.2f} s beside the restores (rounds: {each('restore_cp_r_s')} s; "
        f"restores {each('restore_d1_copy_s')} s); boto3 one PUT per file of D1 "
        f"{r['put_per_file_s']:.2f} s. Also measured: a snapshot of unchanged D1 "
        f"{r['snapshot_unchanged_s']:.3f} s; a no-op push {r['noop_push_d1_s3_s']:.3f} s; "
        f"the first `status()` after a copy restore {r['status_after_restore_s']:.3f} s; "
        f"after a hardlink restore `status()` lists "
        f"{r['status_after_hardlink_changed']:.0f} files as changed, and a snapshot then "
        f"{'is' if r['snapshot_after_hardlink_same'] else 'is NOT'} the snapshot restored."
    )
    publish("workspaces", results, table(TARGETS, results, notes))
