"""Writers for the concurrency and crash tests, run in child processes.

``python -m tests.workload KEEP SEED`` writes until it is killed.
"""

from __future__ import annotations

import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datakeep

SHARED = 10
DISTINCT = 10


def write_thread(keep: datakeep.Keep, scratch: Path, proc: int, thread: int) -> list[str]:
    """Overlapping and distinct content, tags and a tree; returns every digest it put."""
    digests = []
    for j in range(SHARED):
        digests.append(keep.put(f"shared {j}".encode(), tags={"shared": str(j)}).digest)
        own = f"process {proc} thread {thread} item {j}".encode()
        digests.append(keep.put(own, tags={"writer": f"{proc}.{thread}", "j": str(j)}).digest)
    tree_dir = scratch / f"p{proc}t{thread}"
    tree_dir.mkdir(parents=True)
    (tree_dir / "common").write_bytes(b"the same in every tree")
    (tree_dir / "own1").write_bytes(f"{proc}.{thread} first".encode())
    (tree_dir / "own2").write_bytes(f"{proc}.{thread} second".encode())
    digests.append(keep.put_tree(tree_dir, tags={"tree": f"{proc}.{thread}"}).digest)
    return digests


def write_process(keep_path: str, scratch: str, proc: int, threads: int) -> list[str]:
    """One process of the many-writers test: ``threads`` threads sharing one open keep."""
    barrier = threading.Barrier(threads)

    def run(thread: int) -> list[str]:
        barrier.wait()  # start together to maximise contention
        return write_thread(keep, Path(scratch), proc, thread)

    with datakeep.open(keep_path) as keep, ThreadPoolExecutor(threads) as pool:
        return [d for part in pool.map(run, range(threads)) for d in part]


def write_forever(keep_path: str, seed: int) -> None:
    """Random puts, tags and trees until killed."""
    rng = random.Random(seed)
    scratch = Path(keep_path) / f"scratch-{seed}"
    with datakeep.open(keep_path) as keep:
        for i in range(10**9):
            choice = rng.random()
            if choice < 0.6:
                data = rng.randbytes(rng.choice([10, 4096, 200_000]))
                keep.put(data, tags={"seed": str(seed)} if rng.random() < 0.5 else None)
            elif choice < 0.8:
                tree = scratch / str(i)
                tree.mkdir(parents=True)
                for n in range(rng.randint(1, 30)):
                    (tree / f"f{n}").write_bytes(rng.randbytes(rng.randint(0, 8192)))
                keep.put_tree(tree, tags={"round": str(i)})
            else:
                keep.put(f"popular {rng.randint(0, 20)}".encode(), tags={"popular": "yes"})


def log_records(keep_path: str, worker: int, batches: int, singles: int) -> int:
    """One worker process of a data factory: batches with payloads, then single calls."""
    from datakeep.runs import ExecutionJob, Record, RunStore

    job = f"job-{worker}"
    n = 0
    with RunStore.open(keep_path) as runs:
        runs.log_execution_job_start(ExecutionJob(job, "master", status="running"))
        for b in range(batches):
            batch = [Record(f"{job}-{b}-{i}", job, "master", "completed") for i in range(50)]
            runs.log_records(
                batch, {r.record_uid: {"worker": worker, "n": n + i} for i, r in enumerate(batch)}
            )
            n += len(batch)
        for i in range(singles):
            runs.log_record_metadata(Record(f"{job}-single-{i}", job, "master", "filtered"))
            n += 1
    return n


def log_records_forever(keep_path: str, seed: int) -> None:
    """Records with payloads, in batches and one by one, until killed."""
    from datakeep.runs import ExecutionJob, Record, RunStore

    rng = random.Random(seed)
    job = f"job-{seed}"
    with RunStore.open(keep_path) as runs:
        runs.log_execution_job_start(ExecutionJob(job, "master", status="running"))
        for i in range(10**9):
            size = rng.randint(1, 5)
            batch = [Record(f"{job}-{i}-{k}", job, "master", "completed") for k in range(size)]
            data = {
                r.record_uid: {"text": rng.randbytes(rng.choice([100, 70_000])).hex()}
                for r in batch
            }
            runs.log_records(batch, data)
            ref = runs.save_record_data(f"{job}-{i}-s", "master", job, {"i": i})
            runs.log_record_metadata(Record(f"{job}-{i}-s", job, "master", "completed", ref))


if __name__ == "__main__":
    if sys.argv[1] == "runs":
        log_records_forever(sys.argv[2], int(sys.argv[3]))
    else:
        write_forever(sys.argv[1], int(sys.argv[2]))
