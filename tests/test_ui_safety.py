"""What the web view must never do, each a test: read outside the keep through a URL,
render a user's string as HTML, scan an index to answer a page, write to the keep."""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import datakeep
from datakeep.errors import IndexFailure
from datakeep.keep import Keep
from datakeep.runs import ExecutionJob, MasterJob, Project, Record, RunStore
from datakeep.ui import create_app, open_read_only

from .test_ui_site import ODD_NAME, TestClient, build_keep

SECRET = "top-secret-marker-3f9a"


@pytest.fixture
def site(tmp_path: Path, index_url: str | None) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    made = build_keep(tmp_path, index_url)
    (tmp_path / "secret.txt").write_text(SECRET)  # beside the keep: never to be served
    keep = open_read_only(tmp_path)
    made["root"], made["keep"] = tmp_path, keep
    with TestClient(create_app(keep, close_keep=True), base_url="http://127.0.0.1") as client:
        yield client, made


def every_page(made: dict[str, Any]) -> list[str]:
    tree, blob = made["tree"], made["blob"]
    train, evaluation = made["records"]["train"], made["records"]["eval"]
    pages = [
        "/content",
        "/content?tag=stage=raw&kind=tree",
        f"/content/{tree}",
        f"/content/{blob}",
        f"/content/{blob}/verify",
        f"/tree/{tree}",
        f"/tree/{tree}/sub",
        f"/tree/{tree}/readme.txt",
        f"/tree/{tree}/table.csv",
        f"/tree/{tree}/frame.parquet",
        f"/tree/{tree}/pixel.png",
        f"/tree/{tree}/{ODD_NAME}",
        "/runs",
        "/runs/projects/qa",
        "/runs/master/m1",
        "/runs/master/m1?status=failed",
        "/runs/chart/m1",
        "/runs/jobs/j1",
        "/runs/records/r001",
        "/workspaces",
        "/workspaces/lab",
        "/workspaces/lab/snapshots/v2",
        "/workspaces/lab/diff",
        "/workspaces/lab/diff?a=v1&b=v2",
        "/workspaces/lab/lineage/results",
        "/workspaces/lab/lineage/results?at=v2",
        "/records",
        f"/records/{train}",
        f"/records/{evaluation}",
        "/files",
        "/files/results",
        "/health",
    ]
    return pages + ["/api" + p for p in pages] + [f"/raw/{blob}", f"/raw/{tree}/readme.txt"]


TRAVERSALS = [
    "/tree/{tree}/..%2F..%2F..%2Fsecret.txt",
    "/tree/{tree}/../../secret.txt",
    "/tree/{tree}/%2E%2E/%2E%2E/secret.txt",
    "/tree/{tree}/sub/..%2F..%2Fsecret.txt",
    "/tree/{tree}/%2F{root}%2Fsecret.txt",
    "/tree/{tree}//{root}/secret.txt",
    "/tree/{tree}/..%5C..%5Csecret.txt",
    "/tree/{tree}/readme.txt%00.png",
    "/raw/{tree}/..%2F..%2F..%2Fsecret.txt",
    "/raw/{tree}/%2F{root}%2Fsecret.txt",
    "/raw/..%2F..%2Fsecret.txt",
    "/raw/%2F{root}%2Fsecret.txt",
    "/raw/%2E%2E",
    "/content/..%2F..%2Fsecret.txt",
    "/content/%2F{root}%2Fsecret.txt",
    "/content/%2E%2E",
    "/content/blake3:..%2F..%2Fsecret",
    "/tree/..%2F..%2F..%2Fsecret.txt",
    "/tree/%2F{root}%2Fsecret.txt/x",
    "/static/..%2F..%2F..%2F..%2Fsecret.txt",
    "/static/../app.py",
    "/static/%2E%2E/app.py",
    "/api/tree/{tree}/..%2F..%2Fsecret.txt",
    "/api/raw/{tree}/..%2Fsecret.txt",
    "/workspaces/lab/lineage/..%2F..%2Fsecret.txt",
    "/workspaces/lab/lineage/%2F{root}%2Fsecret.txt",
    "/records/..%2F..%2Fsecret.txt",
    "/records/%2E%2E",
    "/files/..%2F..%2Fsecret.txt",
]


def test_a_path_or_digest_in_a_url_never_reads_outside_the_keep(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, made = site
    keep: Keep = made["keep"]
    opened: list[str] = []
    backend = keep.store.backend
    real_open, real_read = backend.open, backend.read

    def spying_open(key: str) -> Any:
        opened.append(key)
        return real_open(key)

    def spying_read(key: str, *args: Any) -> Any:
        opened.append(key)
        return real_read(key, *args)

    backend.open, backend.read = spying_open, spying_read  # type: ignore[method-assign]
    root = str(made["root"]).strip("/").replace("/", "%2F")
    for pattern in TRAVERSALS:
        url = pattern.format(tree=made["tree"], root=root)
        response = client.get(url)
        assert response.status_code == 404, (url, response.status_code, response.text[:300])
        assert SECRET not in response.text and "keep.json" not in response.text.lower()
    assert opened == [], "a refused URL read blobs"
    # the static files are served, and nothing beside them
    assert client.get("/static/style.css").status_code == 200


def test_user_strings_are_escaped_everywhere(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, made = site
    for url in (
        "/content?tag=stage",
        f"/content/{made['tree']}",
        f"/tree/{made['tree']}",
        f"/tree/{made['tree']}/readme.txt",
        f"/tree/{made['tree']}/{ODD_NAME}",
        "/runs",
        "/runs/records/r001",
        "/workspaces/lab",
        "/workspaces/lab/snapshots/v2",
        f"/content/{made['tree']}?tag=<script>",
        "/records?kind=<script>alert(1)</script>",
        "/files/results?namespace=<script>alert(1)</script>",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.text
        assert "<script" not in page.lower(), url
        assert "<img src=x" not in page, url
    assert "&lt;script&gt;" in client.get(f"/content/{made['tree']}").text
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in client.get(f"/tree/{made['tree']}").text
    # an error page repeats what was asked, escaped
    missing = client.get("/runs/records/<script>alert(1)</script>")
    assert missing.status_code == 404 and "<script" not in missing.text
    # and nothing a keep holds can run: no script is allowed on any page
    policy = client.get("/content").headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_no_listing_pages_by_offset(site: tuple[TestClient, dict[str, Any]]) -> None:
    """Every list is paged by key: no query the pages run skips rows with an OFFSET.
    (SQLite's dialect writes ``OFFSET ?`` after every ``LIMIT``, with 0: the statements
    are checked, not their text.)"""
    client, made = site
    keep: Keep = made["keep"]
    statements: list[Any] = []

    def seen(_conn: Any, statement: Any, *_: Any) -> None:
        statements.append(statement)

    event.listen(keep.db.engine, "before_execute", seen)
    try:
        for url in every_page(made):
            response = client.get(url)
            assert response.status_code == 200, (url, response.text[:300])
            next_token = response.json().get("next") if url.startswith("/api/") else None
            if next_token:
                sep = "&" if "?" in url else "?"
                assert client.get(f"{url}{sep}after={next_token}").status_code == 200
    finally:
        event.remove(keep.db.engine, "before_execute", seen)
    limited = [s for s in statements if getattr(s, "_limit_clause", None) is not None]
    assert len(limited) > 20
    skipping = [s for s in statements if getattr(s, "_offset_clause", None) is not None]
    assert skipping == []
    assert not [s for s in statements if isinstance(s, str) and "OFFSET" in s.upper()]


def test_a_deep_page_of_many_records_answers_as_fast_as_the_first(tmp_path: Path) -> None:
    """100,000 records (SQLite): the 1,000th page of 50 costs what the first does."""
    with RunStore(datakeep.init(tmp_path), owns_keep=True) as runs:
        runs.save_project(Project("p", "p"))
        runs.log_master_job_start(MasterJob("m", "p", status="running"))
        runs.log_execution_job_start(ExecutionJob("j", "m", status="running"))
        for start in range(0, 100_000, 10_000):
            runs.log_records(
                [Record(f"r{i:06d}", "j", "m", "completed") for i in range(start, start + 10_000)]
            )
        deep = runs.list_records(master_job_id="m", limit=50 * 999).next
    with TestClient(
        create_app(open_read_only(tmp_path), close_keep=True), base_url="http://127.0.0.1"
    ) as client:

        def median_ms(url: str) -> float:
            times = []
            for _ in range(7):
                started = time.perf_counter()
                assert client.get(url).status_code == 200
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1000

        first = median_ms("/api/runs/master/m")
        page = client.get(f"/api/runs/master/m?after={deep}").json()
        assert page["records"][0]["record_uid"] == f"r{100_000 - 50 * 999 - 1:06d}"
        deep_ms = median_ms(f"/api/runs/master/m?after={deep}")
    assert deep_ms < first * 3 + 5, (first, deep_ms)


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: (size, mtime_ns, sha256 of its bytes)."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return found


def test_serving_writes_nothing_to_the_keep(tmp_path: Path, index_url: str | None) -> None:
    made = build_keep(tmp_path, index_url)
    keep_dir = tmp_path / ".datakeep"
    before = _snapshot(keep_dir)
    workspace_before = _snapshot(tmp_path / "ws")
    time.sleep(0.01)  # a write now would have a later mtime
    keep = open_read_only(tmp_path)
    made["keep"] = keep
    with TestClient(create_app(keep, close_keep=True), base_url="http://127.0.0.1") as client:
        for url in every_page(made):
            assert client.get(url).status_code == 200, url
        for url in TRAVERSALS[:3]:
            client.get(url.format(tree=made["tree"], root="x"))
        # only GET (and HEAD) are answered
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for url in ("/content", f"/content/{made['tree']}", "/runs/master/m1", "/api/health"):
                assert client.request(method, url).status_code == 405, (method, url)
        # the connections themselves refuse to write, on either index
        with pytest.raises(IndexFailure):
            keep.tag(made["tree"], {"written": "yes"})
    assert _snapshot(keep_dir) == before
    assert _snapshot(tmp_path / "ws") == workspace_before
    with datakeep.open(tmp_path) as reopened:
        assert "written" not in reopened.info(made["tree"]).tags
