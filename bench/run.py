"""The benchmark suite: ``make bench``.

Generates the datasets (deterministic random bytes), then measures datakeep against a
``cp -r`` baseline run in the same process, so figures are ratios that survive a noisy,
shared machine. Writes ``bench/results/foundation.json`` and the table in BENCHMARKS.md.

D1: 10,000 x 4 KiB in 100 directories + 10 x 100 MiB (1.04 GB).
D2: 100,000 x 1 KiB in 100 directories.
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


def clean(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            for p in path.rglob("*"):
                if p.is_file() and not p.is_symlink():
                    p.chmod(0o644)
            shutil.rmtree(path)


def cp_r(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def fresh_keep(path: Path) -> datakeep.Keep:
    clean(path)
    return datakeep.init(path)


def cli_put(keep_root: Path, data: Path) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of ``datakeep put`` in a child process."""
    os.sync()
    started = time.perf_counter()
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
    elapsed = time.perf_counter() - started
    return elapsed, int(out.stdout.strip()) * 1024


def bench_d1(results: dict[str, float]) -> None:
    data = WORK / "d1"
    generate(data, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    copy, k = WORK / "d1-copy", WORK / "d1-keep"

    results["d1_cp_r_s"] = median_of(3, lambda: cp_r(data, copy), lambda: clean(copy))
    clean(copy)

    api_times = []
    for _ in range(3):
        keep = fresh_keep(k)
        api_times.append(timed(lambda keep=keep: keep.put_tree(data)))
        keep.close()
    results["d1_put_s"] = statistics.median(api_times)

    clean(k)
    datakeep.init(k).close()
    results["d1_put_cli_s"], results["d1_put_peak_rss_bytes"] = cli_put(k, data)

    keep = datakeep.open(k)
    tree = keep.put_tree(data)
    results["d1_noop_put_s"] = median_of(5, lambda: keep.put_tree(data))
    results["d1_noop_put_cli_s"] = median_of(
        3,
        lambda: subprocess.run(
            [*DATAKEEP, "put", str(data)], cwd=k, check=True, capture_output=True
        ),
    )

    changed = []
    for i in range(3):
        target = data / f"dir{i:03d}" / "file0000.bin"
        original = target.read_bytes()
        target.write_bytes(random.Random(100 + i).randbytes(4096))
        changed.append(timed(lambda: keep.put_tree(data)))
        target.write_bytes(original)
    results["d1_one_changed_put_s"] = statistics.median(changed)
    keep.put_tree(data)  # back to the original tree (files rewritten: re-hashed once)

    out = WORK / "d1-out"
    results["d1_export_copy_s"] = median_of(
        3, lambda: keep.export(tree.digest, out), lambda: clean(out)
    )
    results["d1_export_hardlink_s"] = median_of(
        3, lambda: keep.export(tree.digest, out, link="hardlink"), lambda: clean(out)
    )
    clean(out)
    results["d1_verify_all_s"] = median_of(3, lambda: keep.verify_many())
    keep.close()
    clean(k)


def bench_d2(results: dict[str, float]) -> None:
    data = WORK / "d2"
    generate(data, dirs=100, per_dir=1000, size=1024, large=0, seed=2)
    copy, k = WORK / "d2-copy", WORK / "d2-keep"
    results["d2_cp_r_s"] = median_of(1, lambda: cp_r(data, copy), lambda: clean(copy))
    clean(copy)
    keep = fresh_keep(k)
    results["d2_put_s"] = timed(lambda: keep.put_tree(data))
    results["d2_noop_put_s"] = median_of(3, lambda: keep.put_tree(data))
    keep.close()
    clean(k)


def bench_startup(results: dict[str, float]) -> None:
    results["cli_version_s"] = median_of(
        10, lambda: subprocess.run([*DATAKEEP, "--version"], check=True, capture_output=True)
    )
    results["python_startup_s"] = median_of(
        10, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)
    )


Row = tuple[str, str, Callable[[dict[str, float]], tuple[str, bool]]]


def versus_cp(key: str, measure: str, limit: float, baseline: str = "d1_cp_r_s") -> Row:
    """A row whose target is a ratio to the `cp -r` of the same run."""

    def check(r: dict[str, float]) -> tuple[str, bool]:
        ratio = r[key] / r[baseline]
        return f"{r[key]:.2f} s = {ratio:.2f}x cp -r", ratio <= limit

    return measure, f"<= {limit}x cp -r", check


def at_most(key: str, measure: str, limit: float, note: str = "") -> Row:
    """A row whose target is an absolute number of seconds."""

    def check(r: dict[str, float]) -> tuple[str, bool]:
        extra = note.format(**r)
        return f"{r[key]:.3f} s{extra}", r[key] <= limit

    return measure, f"<= {limit:g} s", check


TARGETS: list[Row] = [
    versus_cp("d1_put_s", "D1 cold put (API)", 1.3),
    versus_cp("d1_put_cli_s", "D1 cold put (`datakeep put`, incl. start-up)", 1.3),
    at_most("d1_noop_put_s", "D1 no-op re-put (API)", 0.3),
    at_most("d1_noop_put_cli_s", "D1 no-op re-put (`datakeep put`, incl. start-up)", 0.3),
    at_most("d1_one_changed_put_s", "D1 re-put, one file changed (API)", 0.3),
    versus_cp("d1_export_copy_s", "D1 export, copy (verified)", 1.1),
    at_most("d1_export_hardlink_s", "D1 export, hardlink (verified)", 1.0),
    at_most("d1_verify_all_s", "D1 verify all", 1.5),
    at_most("d2_put_s", "D2 cold put (API)", 20, " (cp -r {d2_cp_r_s:.2f} s)"),
    at_most("d2_noop_put_s", "D2 no-op re-put (API)", 1.0),
    at_most(
        "cli_version_s", "`datakeep --version`", 0.150, " (bare python {python_startup_s:.3f} s)"
    ),
    (
        "peak RSS during D1 put",
        "<= 150 MB",
        lambda r: (
            f"{r['d1_put_peak_rss_bytes'] / 1e6:.0f} MB",
            r["d1_put_peak_rss_bytes"] <= 150e6,
        ),
    ),
]


def write_markdown(results: dict[str, float]) -> str:
    lines = [
        "| measure | target | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for measure, target, check in TARGETS:
        value, ok = check(results)
        lines.append(f"| {measure} | {target} | {value} | {'yes' if ok else 'NO'} |")
    lines.append("")
    lines.append(
        f"Baselines in the same run: `cp -r` of D1 {results['d1_cp_r_s']:.2f} s, "
        f"of D2 {results['d2_cp_r_s']:.2f} s."
    )
    return "\n".join(lines)


def update_benchmarks_md(table: str) -> None:
    path = HERE.parent / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    start, end = "<!-- foundation:start -->", "<!-- foundation:end -->"
    block = f"{start}\n{table}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)


def main() -> None:
    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, float] = {}
    bench_startup(results)
    bench_d1(results)
    bench_d2(results)
    table = write_markdown(results)
    record = {
        "suite": "foundation",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "results": results,
    }
    (RESULTS / "foundation.json").write_text(json.dumps(record, indent=2) + "\n")
    update_benchmarks_md(table)
    print(table)


if __name__ == "__main__":
    main()
