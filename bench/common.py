"""Helpers shared by the benchmark suites: datasets, timing, result tables.

Every figure is compared with a baseline run in the same process or script (``cp -r``,
raw sqlite3, one process), so ratios survive a noisy, shared machine.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datakeep

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"
TRASH = WORK / "trash"
# How long ext4 without a journal keeps freed inodes from reuse once written (clean())
INODE_REUSE_DELAY_S = 60
DATAKEEP = [sys.executable, "-m", "datakeep"]


def generate(root: Path, dirs: int, per_dir: int, size: int, large: int, seed: int) -> None:
    marker = root / ".complete"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    for d in range(dirs):
        folder = root / f"dir{d:03d}"
        folder.mkdir(parents=True)
        for f in range(per_dir):
            (folder / f"file{f:04d}.bin").write_bytes(rng.randbytes(size))
    for i in range(large):
        (root / f"large{i:02d}.bin").write_bytes(rng.randbytes(100 * 1024 * 1024))
    marker.write_text("")
    os.sync()


def timed(fn: Callable[[], object]) -> float:
    # flush earlier runs' dirty pages first, so no run pays for another's writeback
    os.sync()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_of(
    runs: int, fn: Callable[[], object], before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        times.append(timed(fn))
    return statistics.median(times)


def paired(
    rounds: int,
    baseline: Callable[[], object],
    ours: Callable[[], object],
    before_baseline: Callable[[], object] | None = None,
    before_ours: Callable[[], object] | None = None,
) -> tuple[float, float, float]:
    """(median baseline s, median ours s, median of the rounds' ratios), the two run back
    to back in each round.

    The ratio is taken within each round, then the median of the rounds: this machine
    flips between states minutes apart in which writing 1 GB costs 0.3 s or 3 s, and only
    two runs made back to back share a state. (The best of each side, as timeit takes it,
    paired a baseline from one state with ours from another whenever the state changed
    between rounds.)
    """
    base_times, our_times = [], []
    for _ in range(rounds):
        if before_baseline is not None:
            before_baseline()
        os.sync()  # each side starts with nothing dirty: a sync in ours must not flush theirs
        base_times.append(timed(baseline))
        if before_ours is not None:
            before_ours()
        os.sync()
        our_times.append(timed(ours))
    ratios = [o / b for o, b in zip(our_times, base_times, strict=True)]
    return statistics.median(base_times), statistics.median(our_times), statistics.median(ratios)


def clean(*paths: Path) -> None:
    """Move ``paths`` out of the way; :func:`empty_trash` deletes them after the run.

    Not deleted now because this machine's ext4 has no journal, and without one ext4 will
    not reuse an inode freed in the last 60 s (300 s while its inode table block is not
    yet written): every file created in that window first scans past each recently freed
    inode (perf: ``recently_deleted`` and ``find_get_block`` took 70% of a ``cp -r``).
    Deleting a 10,000-file tree right before timing one that creates 10,000 files made
    the timed run 5-30x slower, by chance of timing.
    """
    for path in paths:
        if path.exists() or path.is_symlink():
            TRASH.mkdir(parents=True, exist_ok=True)
            os.rename(path, TRASH / f"{path.name}-{time.time_ns()}")


def empty_trash() -> bool:
    """Delete what :func:`clean` set aside; True if there was anything."""
    if not TRASH.exists():
        return False
    shutil.rmtree(TRASH)
    os.sync()
    return True


def cp_r(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def fresh_keep(path: Path, index: str | None = None) -> datakeep.Keep:
    clean(path)
    return datakeep.init(path, index=index)


def cli_put(keep_root: Path, data: Path) -> int:
    """Run ``datakeep put`` in a child process; its peak RSS in bytes."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *DATAKEEP, "put", str(data)],
        cwd=keep_root,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip()) * 1024


Row = tuple[str, str, Callable[[dict[str, float]], tuple[str, bool]]]


def versus_cp(key: str, measure: str, limit: float, baseline: str = "d1_cp_r_s") -> Row:
    """A row whose target is a ratio to the `cp -r` of the same run."""

    def check(r: dict[str, float]) -> tuple[str, bool]:
        # a paired measurement carries its own ratio (median of back-to-back rounds)
        ratio = r.get(f"{key}_ratio", r[key] / r[baseline])
        return f"{r[key]:.2f} s = {ratio:.2f}x cp -r", ratio <= limit

    return measure, f"<= {limit}x cp -r", check


def at_most(key: str, measure: str, limit: float, note: str = "") -> Row:
    """A row whose target is an absolute number of seconds."""

    def check(r: dict[str, float]) -> tuple[str, bool]:
        extra = note.format(**r)
        return f"{r[key]:.3f} s{extra}", r[key] <= limit

    return measure, f"<= {limit:g} s", check


def table(rows: list[Row], results: dict[str, float], baselines: str) -> str:
    lines = [
        "| measure | target | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for measure, target, check in rows:
        value, ok = check(results)
        lines.append(f"| {measure} | {target} | {value} | {'yes' if ok else 'NO'} |")
    lines.append("")
    lines.append(baselines)
    return "\n".join(lines)


def publish(suite: str, results: dict[str, float], markdown: str) -> None:
    """Write ``bench/results/<suite>.json`` and the suite's block in BENCHMARKS.md."""
    RESULTS.mkdir(exist_ok=True)
    record = {
        "suite": suite,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "results": results,
    }
    (RESULTS / f"{suite}.json").write_text(json.dumps(record, indent=2) + "\n")
    path = HERE.parent / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    start, end = f"<!-- {suite}:start -->", f"<!-- {suite}:end -->"
    block = f"{start}\n{markdown}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)
    print(markdown)
