"""Foundation figures (issue 2): D1 and D2 against ``cp -r`` of the same tree.

D1: 10,000 x 4 KiB in 100 directories + 10 x 100 MiB (1.04 GB).
D2: 100,000 x 1 KiB in 100 directories.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys

import datakeep

from .common import (
    DATAKEEP,
    WORK,
    Row,
    at_most,
    clean,
    cli_put,
    cp_r,
    fresh_keep,
    generate,
    median_of,
    paired,
    publish,
    table,
    timed,
    versus_cp,
)


def bench_d1(results: dict[str, float]) -> None:
    data = WORK / "d1"
    generate(data, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    copy, k = WORK / "d1-copy", WORK / "d1-keep"

    fresh: list[datakeep.Keep] = []  # a new empty keep before each timed put

    def new_keep() -> None:
        if fresh:
            fresh.pop().close()
        fresh.append(fresh_keep(k))

    results["d1_cp_r_s"], results["d1_put_s"], results["d1_put_s_ratio"] = paired(
        5, lambda: cp_r(data, copy), lambda: fresh[0].put_tree(data), lambda: clean(copy), new_keep
    )
    fresh.pop().close()

    peaks: list[int] = []

    def new_cli_keep() -> None:
        clean(k)
        datakeep.init(k).close()

    _, results["d1_put_cli_s"], results["d1_put_cli_s_ratio"] = paired(
        3,
        lambda: cp_r(data, copy),
        lambda: peaks.append(cli_put(k, data)),
        lambda: clean(copy),
        new_cli_keep,
    )
    results["d1_put_peak_rss_bytes"] = max(peaks)
    clean(copy)

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
    _, results["d1_export_copy_s"], results["d1_export_copy_s_ratio"] = paired(
        5,
        lambda: cp_r(data, copy),
        lambda: keep.export(tree.digest, out),
        lambda: clean(copy),
        lambda: clean(out),
    )
    # the blobs are in the page cache (the put above wrote them): the large files are
    # hashed before they are linked, beside the small files being written
    _, results["d1_export_hardlink_s"], results["d1_export_hardlink_s_ratio"] = paired(
        5,
        lambda: cp_r(data, copy),
        lambda: keep.export(tree.digest, out, link="hardlink"),
        lambda: clean(copy),
        lambda: clean(out),
    )
    clean(copy, out)
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


TARGETS: list[Row] = [
    versus_cp("d1_put_s", "D1 cold put (API)", 1.3),
    versus_cp("d1_put_cli_s", "D1 cold put (`datakeep put`, incl. start-up)", 1.3),
    at_most("d1_noop_put_s", "D1 no-op re-put (API)", 0.3),
    at_most("d1_noop_put_cli_s", "D1 no-op re-put (`datakeep put`, incl. start-up)", 0.3),
    at_most("d1_one_changed_put_s", "D1 re-put, one file changed (API)", 0.3),
    versus_cp("d1_export_copy_s", "D1 export, copy (verified)", 1.1),
    at_most(
        "d1_export_hardlink_s",
        "D1 export, hardlink (verified, page cache warm)",
        1.0,
        " = {d1_export_hardlink_s_ratio:.2f}x cp -r",
    ),
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


def run() -> None:
    results: dict[str, float] = {}
    bench_startup(results)
    bench_d1(results)
    bench_d2(results)
    baselines = (
        f"Baselines in the same run: `cp -r` of D1 {results['d1_cp_r_s']:.2f} s, "
        f"of D2 {results['d2_cp_r_s']:.2f} s."
    )
    publish("foundation", results, table(TARGETS, results, baselines))
