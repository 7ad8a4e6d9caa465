"""Web-view figures (issue 24), served in-process through the ASGI app (Starlette's test
client: the time a request takes inside the server, without a network):

* the runs page of a master job with 1,000,000 records, its first and its 1,000th page of
  50 records (keyset token), on SQLite and, if the server runs, PostgreSQL;
* the tree page of a 10,000-file tree: the first view (the manifest read, verified and
  decoded) and later ones (decoded manifest cached by digest);
* ``datakeep ui`` from the command to its first HTTP 200, in a child process.

Medians of several requests; the machine may be running other work meanwhile.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import datakeep
from datakeep.runs import ExecutionJob, MasterJob, Project, Record, RunStore
from datakeep.ui import create_app, open_read_only

from .common import WORK, Row, clean, publish, table

with warnings.catch_warnings():  # this Starlette prefers httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

RECORDS = 1_000_000
PAGE = 50
STATUSES = ("completed", "failed", "filtered", "duplicate")
REQUESTS = 15


def _client(keep_root: Path) -> TestClient:
    return TestClient(
        create_app(open_read_only(keep_root), close_keep=True), base_url="http://127.0.0.1"
    )


def _median_ms(client: TestClient, url: str, n: int = REQUESTS) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.text[:300])
    return statistics.median(times) * 1000


def _million(path: Path, index: str | None) -> bool:
    """A master job with 1,000,000 records logged in batches, as a factory logs them;
    False if the SQLite one of an earlier run is still there (it is kept)."""
    marker = path / ".complete"
    if index is None and marker.exists():
        return False
    clean(path)
    with RunStore(datakeep.init(path, index=index), owns_keep=True) as runs:
        runs.save_project(Project("bench", "bench"))
        runs.log_master_job_start(MasterJob("master", "bench", status="running"))
        for job in range(4):
            runs.log_execution_job_start(ExecutionJob(f"job{job}", "master", status="running"))
        for start in range(0, RECORDS, 10_000):
            runs.log_records(
                [
                    Record(f"r{i:07d}", f"job{i % 4}", "master", STATUSES[(i // 7) % 4])
                    for i in range(start, start + 10_000)
                ]
            )
    marker.write_text("")
    return True


def bench_runs(results: dict[str, float], label: str, index: str | None) -> None:
    path = WORK / f"ui-runs-1m-{label}"
    started = time.perf_counter()
    if _million(path, index):
        results[f"{label}_build_1m_s"] = time.perf_counter() - started
    with RunStore.open(path) as runs:
        deep = runs.list_records(master_job_id="master", limit=PAGE * 999).next
        deep_failed = runs.list_records(
            master_job_id="master", status="failed", limit=PAGE * 999
        ).next
    with _client(path) as client:
        for url in ("/runs/master/master", "/api/runs/master/master"):
            client.get(url)  # warm: statement cache, page cache
        pages = {
            "first_page": "/runs/master/master",
            "page_1000": f"/runs/master/master?after={deep}",
            "failed_first_page": "/runs/master/master?status=failed",
            "failed_page_1000": f"/runs/master/master?status=failed&after={deep_failed}",
            "api_page_1000": f"/api/runs/master/master?after={deep}",
        }
        for key, url in pages.items():
            results[f"{label}_runs_{key}_ms"] = _median_ms(client, url)
        body = client.get(pages["page_1000"]).text
        assert f"r{RECORDS - PAGE * 999 - 1:07d}" in body
        started = time.perf_counter()
        client.get("/runs/chart/master")  # aggregated in the database, then cached
        results[f"{label}_chart_first_ms"] = (time.perf_counter() - started) * 1000
        results[f"{label}_chart_cached_ms"] = _median_ms(client, "/runs/chart/master", 5)
    if index is not None:
        clean(path)


def bench_tree(results: dict[str, float]) -> None:
    """10,000 files in one directory (the page shows 200 of them) and in 100 directories."""
    root = WORK / "ui-tree"
    clean(root)
    flat, nested = root / "flat", root / "nested"
    flat.mkdir(parents=True)
    for i in range(10_000):
        (flat / f"file{i:05d}.txt").write_text(f"{i}\n")
        folder = nested / f"dir{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i % 100:03d}.txt").write_text(f"{i}\n")
    with datakeep.init(root) as keep:
        trees = {"flat": keep.put_tree(flat).digest, "nested": keep.put_tree(nested).digest}
    for name, digest in trees.items():
        urls = [f"/tree/{digest}", f"/tree/{digest}?after=file05000.txt"]
        if name == "nested":
            urls = [f"/tree/{digest}", f"/tree/{digest}/dir050"]
        cold = []
        for _ in range(5):  # a fresh app each time: nothing cached
            with _client(root) as client:
                started = time.perf_counter()
                assert client.get(urls[0]).status_code == 200
                cold.append(time.perf_counter() - started)
        results[f"tree_{name}_first_view_ms"] = statistics.median(cold) * 1000
        with _client(root) as client:
            client.get(urls[0])
            results[f"tree_{name}_page_ms"] = _median_ms(client, urls[0])
            results[f"tree_{name}_other_page_ms"] = _median_ms(client, urls[1])
    clean(root)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ui_command() -> list[str]:
    """``datakeep ui``: through the command group once it lists the command, else with
    its module imported by name (which registers it)."""
    from datakeep.cli import cli

    if "ui" in cli.commands:
        return [sys.executable, "-m", "datakeep", "ui"]
    code = "import datakeep.cli.ui; from datakeep.cli import main; main()"
    return [sys.executable, "-c", code, "ui"]


def bench_start(results: dict[str, float]) -> None:
    root = WORK / "ui-start"
    clean(root)
    with datakeep.init(root) as keep:
        keep.put(b"hello", tags={"kind": "bench"})
    times = []
    for _ in range(7):
        port = _free_port()
        started = time.perf_counter()
        server = subprocess.Popen(
            [*_ui_command(), "--port", str(port)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/content", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if server.poll() is not None:
                        raise RuntimeError("datakeep ui exited") from None
                    time.sleep(0.005)
            times.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=30)
    results["start_to_first_response_s"] = statistics.median(times)
    results["start_to_first_response_max_s"] = max(times)
    clean(root)


def _ms(key: str, measure: str, limit: float) -> Row:
    def check(r: dict[str, float]) -> tuple[str, bool]:
        if key not in r:
            return "not run (no PostgreSQL server)", False
        return f"{r[key]:.1f} ms", r[key] <= limit

    return measure, f"<= {limit:g} ms", check


def _s(key: str, measure: str, limit: float) -> Row:
    def check(r: dict[str, float]) -> tuple[str, bool]:
        return f"{r[key]:.2f} s (slowest of 7: {r[key.replace('_s', '_max_s')]:.2f} s)", (
            r[key] <= limit
        )

    return measure, f"<= {limit:g} s", check


TARGETS: list[Row] = [
    _ms(
        "sqlite_runs_first_page_ms",
        "runs page, master job of 1,000,000 records, first page (SQLite)",
        100,
    ),
    _ms("sqlite_runs_page_1000_ms", "the same, 1,000th page (SQLite)", 100),
    _ms(
        "postgres_runs_first_page_ms", "runs page, 1,000,000 records, first page (PostgreSQL)", 100
    ),
    _ms("postgres_runs_page_1000_ms", "the same, 1,000th page (PostgreSQL)", 100),
    _ms("tree_flat_first_view_ms", "tree page, 10,000 files in one directory, first view", 200),
    _ms("tree_nested_first_view_ms", "tree page, 10,000 files in 100 directories, first view", 200),
    _s("start_to_first_response_s", "`datakeep ui` start to first response", 1.5),
]


def run() -> None:
    from .index import postgres_schema

    results: dict[str, float] = {}
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    bench_start(results)
    bench_tree(results)
    bench_runs(results, "sqlite", None)
    url = postgres_schema()
    if url is not None:
        bench_runs(results, "postgres", url)
    results["suite_s"] = time.perf_counter() - started
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()[0]
    publish("ui", results, markdown(results))


def markdown(r: dict[str, float]) -> str:
    """The suite's block of BENCHMARKS.md: its heading, table and notes."""

    def pair(label: str) -> str:
        if f"{label}_runs_first_page_ms" not in r:
            return f"{label}: not run"
        return (
            f"{label}: status=failed first page {r[f'{label}_runs_failed_first_page_ms']:.1f} ms, "
            f"1,000th {r[f'{label}_runs_failed_page_1000_ms']:.1f} ms; JSON 1,000th page "
            f"{r[f'{label}_runs_api_page_1000_ms']:.1f} ms; records-per-status chart "
            f"{r[f'{label}_chart_first_ms']:.0f} ms when first drawn (counted per status and "
            f"bucket from an index), {r[f'{label}_chart_cached_ms']:.1f} ms after (cached until "
            "the counts change); 1,000,000 records logged "
            + (
                f"in {r[f'{label}_build_1m_s']:.0f} s"
                if f"{label}_build_1m_s" in r
                else "by an earlier run (kept)"
            )
        )

    notes = (
        "Server time through the ASGI app in-process, medians of "
        f"{REQUESTS} requests. Also measured: {pair('sqlite')}; {pair('postgres')}. "
        f"Tree pages once the manifest is cached: one directory of 10,000 files "
        f"{r['tree_flat_page_ms']:.1f} ms (a later page {r['tree_flat_other_page_ms']:.1f} ms), "
        f"100 directories {r['tree_nested_page_ms']:.1f} ms (one of them "
        f"{r['tree_nested_other_page_ms']:.1f} ms). Load average {r['load_average_before']:.1f} "
        f"before the suite, {r['load_average_after']:.1f} after (2 cores)."
    )
    return "## Web view: `datakeep ui` (issue 24)\n\n" + table(TARGETS, r, notes)


if __name__ == "__main__":
    run()
