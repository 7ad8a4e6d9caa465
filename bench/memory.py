"""Peak memory (issue 25): put, push, pull, export, verify, fsck and gc of D1 and D2.

Each operation runs alone in a child process, which reports its own peak resident set
(``VmHWM`` in ``/proc/self/status``): anonymous memory and the file pages it maps, as a
cgroup's memory limit sees them. The target is 256 MB whatever the file sizes.

D1: 10,000 x 4 KiB in 100 directories + 10 x 100 MiB (1.04 GB).
D2: 100,000 x 1 KiB in 100 directories.

The operations, in order, each on what the one before left: put of the dataset into a
fresh keep; verify of everything; fsck; gc (nothing to collect: it still reads every
tree); push to a directory remote and to S3 (moto's server in its own process); pull of
everything from each remote into a fresh keep; export of the tree by copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datakeep

from .common import WORK, Row, clean, generate, publish, table
from .remotes import MotoServer

LIMIT = 256_000_000
OPERATIONS = [
    "put",
    "verify",
    "fsck",
    "gc",
    "push_dir",
    "push_s3",
    "pull_dir",
    "pull_s3",
    "export",
]
_LABELS = {
    "put": "put",
    "verify": "verify all",
    "fsck": "fsck",
    "gc": "gc",
    "push_dir": "push to a directory",
    "push_s3": "push to S3",
    "pull_dir": "pull from a directory",
    "pull_s3": "pull from S3",
    "export": "export (copy)",
}
_REPO = Path(__file__).resolve().parent.parent


def peak_rss() -> int:
    """This process's peak resident set in bytes (VmHWM: file-backed mapped pages too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child() -> None:
    """``python -c 'from bench.memory import child; child()' OP KEEP DATA [LOCATION
    ENDPOINT]``: run one operation, print the peak RSS."""
    op, keep_path, data = sys.argv[1:4]
    location = sys.argv[4] if len(sys.argv) > 4 else ""
    endpoint = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
    if op == "put":
        keep = datakeep.init(keep_path)
        keep.put_tree(data, tags={"bench": "memory"})
    elif op.startswith("pull"):
        keep = datakeep.init(keep_path)
        keep.add_remote("from", location, endpoint)
        keep.pull("from", everything=True)
    else:
        keep = datakeep.open(keep_path)
        tree = keep.find(tags={"bench": "memory"}).items[0].digest
        if op == "verify":
            assert keep.verify_many().ok
        elif op == "fsck":
            assert keep.fsck().ok
        elif op == "gc":
            keep.gc()
        elif op.startswith("push"):
            keep.add_remote(op, location, endpoint)
            keep.push(op, [tree])
        elif op == "export":
            keep.export(tree, data)
        else:
            raise SystemExit(f"unknown operation {op!r}")
    keep.close()
    print(peak_rss())


def measure(op: str, keep: Path, data: Path, location: str = "", endpoint: str = "") -> int:
    """Peak RSS in bytes of ``op`` run alone in a fresh Python process."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bench.memory import child; child()",
            op,
            str(keep),
            str(data),
            location,
            endpoint,
        ],
        cwd=_REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


def bench_dataset(results: dict[str, float], name: str, data: Path, server: MotoServer) -> None:
    keep, remote = WORK / f"{name}-mem-keep", WORK / f"{name}-mem-remote"
    pulled, out = WORK / f"{name}-mem-pulled", WORK / f"{name}-mem-out"
    clean(keep, remote, pulled, out)
    bucket = server.bucket(f"memory-{name}")
    s3 = f"s3://{bucket}/keep"

    def run(op: str, target: Path = keep, arg: Path = data, location: str = "") -> None:
        endpoint = server.url if location.startswith("s3://") else ""
        results[f"{name}_{op}_peak_rss_bytes"] = measure(op, target, arg, location, endpoint)

    run("put")
    run("verify")
    run("fsck")
    run("gc")
    run("push_dir", location=str(remote))
    run("push_s3", location=s3)
    run("pull_dir", target=pulled, location=str(remote))
    clean(pulled)
    run("pull_s3", target=pulled, location=s3)
    run("export", arg=out)
    clean(keep, remote, pulled, out)


def _row(op: str) -> Row:
    def check(r: dict[str, float]) -> tuple[str, bool]:
        d1, d2 = r[f"d1_{op}_peak_rss_bytes"], r[f"d2_{op}_peak_rss_bytes"]
        return f"D1 {d1 / 1e6:.0f} MB, D2 {d2 / 1e6:.0f} MB", max(d1, d2) <= LIMIT

    return f"peak RSS of {_LABELS[op]}", f"<= {LIMIT / 1e6:.0f} MB", check


TARGETS: list[Row] = [_row(op) for op in OPERATIONS]


def run() -> None:
    d1, d2 = WORK / "d1", WORK / "d2"
    generate(d1, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    generate(d2, dirs=100, per_dir=1000, size=1024, large=0, seed=2)
    results: dict[str, float] = {}
    server = MotoServer()
    try:
        bench_dataset(results, "d1", d1, server)
        bench_dataset(results, "d2", d2, server)
    finally:
        server.stop()
    results["python_peak_rss_bytes"] = float(
        subprocess.run(
            [sys.executable, "-c", "from bench.memory import peak_rss; print(peak_rss())"],
            cwd=_REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
    )
    notes = (
        "Each operation alone in a fresh process, its peak resident set (VmHWM: mapped "
        "file pages count, as a cgroup sees them); a bare Python process with datakeep "
        f"imported: {results['python_peak_rss_bytes'] / 1e6:.0f} MB. "
        f"CPUs: {os.cpu_count()}."
    )
    publish("memory", results, table(TARGETS, results, notes))
