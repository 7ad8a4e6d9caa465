"""The web view (``datakeep ui``) through its ASGI app: every page and its JSON twin on a
keep holding content, runs, a workspace, record directories and a file store, on both
indexes."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import datakeep
from datakeep.keep import Keep
from datakeep.ui import create_app, open_read_only

from .conftest import blob_path, damage
from .s3server import S3Endpoint, s3  # noqa: F401  (the session fixture)
from .test_ui_site import RECORDS, SCRIPT, STATUSES, TestClient, build_keep, png


@pytest.fixture
def site(tmp_path: Path, index_url: str | None) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    made = build_keep(tmp_path, index_url)
    keep = open_read_only(tmp_path)
    made["root"] = tmp_path
    made["keep"] = keep
    with TestClient(create_app(keep, close_keep=True), base_url="http://127.0.0.1") as client:
        yield client, made


def ok(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return response.text


def api(client: TestClient, url: str) -> Any:
    response = client.get("/api" + url)
    assert response.status_code == 200, (url, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_content_list_searches_tags_and_kinds_and_pages_by_digest(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, made = site
    page = ok(client, "/content?tag=stage")
    assert made["tree"].partition(":")[2][:12] in page and "stage=raw" in page
    trees = api(client, "/content?kind=tree")["items"]  # workspaces and records make trees too
    assert made["tree"] in [c["digest"] for c in trees] and {c["kind"] for c in trees} == {"tree"}
    assert [c["digest"] for c in api(client, "/content?tag=stage=raw")["items"]] == [made["tree"]]
    assert [c["digest"] for c in api(client, "/content?tag=stage=r*")["items"]] == [made["tree"]]
    assert api(client, "/content?tag=stage=other")["items"] == []
    assert [c["digest"] for c in api(client, "/content?tag=kind")["items"]] == [made["blob"]]
    # keyset pages: every content once, in digest order, whatever the page
    keep: Keep = made["keep"]
    everything = [c.digest for c in keep.store.iter_all()]
    assert len(everything) > 50  # more than one page
    seen, after = [], None
    while True:
        found = api(client, "/content" + (f"?after={after}" if after else ""))
        seen += [c["digest"] for c in found["items"]]
        after = found["next"]
        if after is None:
            break
    assert seen == everything


def test_content_page_shows_size_tags_placements_and_pin(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, made = site
    found = api(client, f"/content/{made['tree']}")
    assert found["content"]["tags"] == {"stage": "raw", "note": SCRIPT}
    assert found["pin"]["note"] == "paper"
    assert [(p["location"], p["role"]) for p in found["placements"]] == [("primary", "primary")]
    # a short prefix names it too, as on the command line
    short = made["tree"].partition(":")[2][:10]
    assert api(client, f"/content/{short}")["content"]["digest"] == made["tree"]
    blob = api(client, f"/content/{made['blob']}")
    assert blob["preview"]["kind"] == "text" and blob["content"]["size"] == 18 * 4000
    html = ok(client, f"/content/{made['blob']}")
    assert "a blob of its own" in html and "not pinned" in html


def test_tree_is_walked_like_a_file_browser(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, made = site
    tree = made["tree"]
    root = api(client, f"/tree/{tree}")
    names = [(e["name"], e["kind"]) for e in root["entries"]]
    assert ("sub", "dir") in names and ("readme.txt", "f") in names
    sub = api(client, f"/tree/{tree}/sub")
    assert [e["name"] for e in sub["entries"]] == ["deep.txt"]
    assert [c["name"] for c in sub["crumbs"]] == ["sub"]
    html = ok(client, f"/tree/{tree}/sub/")
    assert "deep.txt" in html
    text = api(client, f"/tree/{tree}/readme.txt")
    assert text["entry"]["digest"] == made["file"]["readme.txt"]
    assert text["preview"] == {
        "kind": "text",
        "text": f"hello from the keep\n{SCRIPT}\n",
        "truncated": False,
    }
    csv = api(client, f"/tree/{tree}/table.csv")["preview"]
    assert csv["columns"] == ["city", "rows"] and csv["rows"] == [["Oslo", "3"], ["Lima", "5"]]
    parquet = api(client, f"/tree/{tree}/frame.parquet")["preview"]
    assert parquet["kind"] == "table" and parquet["columns"] == ["a", "b"]
    assert parquet["rows"] == [["1", "x"], ["2", "y"], ["3", "z"]]
    image = api(client, f"/tree/{tree}/pixel.png")["preview"]
    assert image == {"kind": "image", "type": "image/png"}
    assert client.get(f"/tree/{tree}/nothing.txt").status_code == 404


def test_parquet_preview_degrades_without_pyarrow(
    site: tuple[TestClient, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, made = site
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    found = api(client, f"/tree/{made['tree']}/frame.parquet")["preview"]
    assert found == {"kind": "binary", "note": "install pyarrow to preview Parquet files"}
    assert "download (verified)" in ok(client, f"/tree/{made['tree']}/frame.parquet")


def test_a_large_directory_pages_by_name(tmp_path: Path, index_url: str | None) -> None:
    (tmp_path / "many" / "d").mkdir(parents=True)
    for i in range(450):
        (tmp_path / "many" / f"f{i:04d}.txt").write_text(str(i))
    (tmp_path / "many" / "d" / "inner.txt").write_text("in")
    (tmp_path / "many" / "e.txt").write_text("e")
    with datakeep.init(tmp_path, index=index_url) as keep:
        tree = keep.put_tree(tmp_path / "many").digest
    with TestClient(
        create_app(open_read_only(tmp_path), close_keep=True), base_url="http://127.0.0.1"
    ) as client:
        names, after, pages = [], None, 0
        while True:
            found = api(client, f"/tree/{tree}" + (f"?after={after}" if after else ""))
            names += [e["name"] for e in found["entries"]]
            pages += 1
            after = found["next"]
            if after is None:
                break
    assert pages == 3
    assert names == ["d", "e.txt", *(f"f{i:04d}.txt" for i in range(450))]


def test_download_streams_the_verified_bytes(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, made = site
    readme = client.get(f"/raw/{made['tree']}/readme.txt")
    assert readme.status_code == 200
    assert readme.content == f"hello from the keep\n{SCRIPT}\n".encode()
    assert readme.headers["content-type"] == "application/octet-stream"
    assert "attachment" in readme.headers["content-disposition"]
    assert readme.headers["x-datakeep-digest"] == made["file"]["readme.txt"]
    image = client.get(f"/raw/{made['tree']}/pixel.png?inline=1")
    assert image.headers["content-type"] == "image/png" and image.content == png()
    blob = client.get(f"/raw/{made['blob']}")
    assert blob.content == b"a blob of its own\n" * 4000


def test_a_damaged_blob_gives_an_error_page_never_its_bytes(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, made = site
    keep: Keep = made["keep"]
    damaged = b"A BLOB OF ITS OWN\n" * 4000  # same size, other bytes
    damage(blob_path(keep, made["blob"]), damaged)
    for url in (f"/raw/{made['blob']}", f"/content/{made['blob']}"):
        response = client.get(url)
        assert response.status_code == 500, url
        assert "damaged content" in response.text
        assert b"A BLOB OF ITS OWN" not in response.content
    problem = api(client, f"/content/{made['blob']}/verify")
    assert problem["ok"] is False and problem["problems"][0]["digest"] == made["blob"]
    assert api(client, f"/content/{made['tree']}/verify")["ok"] is True
    failed = client.get(f"/api/content/{made['blob']}")
    assert failed.status_code == 500 and "damaged content" in failed.json()["error"]


def test_runs_projects_master_jobs_records_and_payloads(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, _ = site
    assert [p["project_id"] for p in api(client, "/runs")["items"]] == ["qa"]
    project = api(client, "/runs/projects/qa")
    (job,) = project["master_jobs"]
    assert job["master_job_id"] == "m1" and job["status"] == "completed_with_errors"
    assert job["record_counts"]["completed"] == RECORDS // 4
    assert "<svg" in ok(client, "/runs/projects/qa")  # the status bar
    master = api(client, "/runs/master/m1")
    assert sorted(j["job_id"] for j in master["execution_jobs"]) == ["j1", "j2"]
    assert sum(master["record_counts"].values()) == RECORDS
    # every record once, newest first, a page at a time
    seen, after = [], None
    while True:
        found = api(client, "/runs/master/m1" + (f"?after={after}" if after else ""))
        seen += [r["record_uid"] for r in found["records"]]
        after = found["next"]
        if after is None:
            break
    assert seen == [f"r{i:03d}" for i in reversed(range(RECORDS))]
    failed = api(client, "/runs/master/m1?status=failed")["records"]
    assert {r["status"] for r in failed} == {"failed"} and len(failed) == RECORDS // 4
    assert len(api(client, "/runs/jobs/j1?status=completed")["records"]) == RECORDS // 4
    record = api(client, "/runs/records/r001")
    assert record["data"] == {"question": SCRIPT, "answer": 42}
    assert record["record"]["status"] == "failed"
    assert api(client, "/runs/records/r000")["data"] is None
    assert client.get("/runs/records/nothing").status_code == 404
    assert client.get("/runs/master/m1?status=done").status_code == 400
    assert client.get("/runs/master/m1?after=garbage").status_code == 400


def test_chart_counts_records_per_status_over_time(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, _ = site
    chart = api(client, "/runs/chart/m1")
    totals: dict[str, int] = {}
    for bucket in chart["buckets"]:
        assert bucket["first_created_at"]
        for status, n in bucket["counts"].items():
            totals[status] = totals.get(status, 0) + n
    assert totals == {s: RECORDS // 4 for s in STATUSES}
    assert 1 < len(chart["buckets"]) <= 40
    drawing = client.get("/runs/chart/m1")
    assert drawing.headers["content-type"].startswith("image/svg+xml")
    assert drawing.text.startswith("<svg") and "completed" in drawing.text


def test_workspace_history_metrics_diff_and_lineage(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, _ = site
    assert api(client, "/workspaces")["items"] == ["lab"]
    lab = api(client, "/workspaces/lab")
    assert [(s["number"], s["tags"]) for s in lab["snapshots"]] == [(2, ["v2"]), (1, ["v1"])]
    assert [v for _, v in lab["metrics"]["accuracy"]] == [0.5, 0.9]
    assert {r["name"]: r["role"] for r in lab["resources"]} == {
        "inputs": "source-data",
        "results": "results",
    }
    html = ok(client, "/workspaces/lab")
    assert html.count("<polyline") == 2  # accuracy and rows
    diff = api(client, "/workspaces/lab/diff?a=v1&b=v2")
    inputs = next(c for c in diff["changes"] if c["resource"] == "inputs")
    assert inputs["added"] == ["more.csv"] and inputs["changed"] == ["train.csv"]
    assert "more.csv" in ok(client, "/workspaces/lab/diff?a=v1&b=v2")
    assert "compare" in ok(client, "/workspaces/lab/diff")
    snapshot = api(client, "/workspaces/lab/snapshots/v2")
    assert snapshot["snapshot"]["message"] == f"more data {SCRIPT}"
    graph = api(client, "/workspaces/lab/lineage/results")
    assert [s["step"] for s in graph["steps"]] == ["train"]
    labels = {n["label"]: n["kind"] for n in graph["nodes"]}
    assert labels == {"results": "data", "train": "step", "inputs": "data"}
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert ("d:inputs", f"s:{graph['steps'][0]['step_id']}") in edges
    assert "<svg" in ok(client, "/workspaces/lab/lineage/results")
    kept = api(client, "/workspaces/lab/lineage/results?at=v2")
    assert [s["step"] for s in kept["steps"]] == ["train"]
    assert api(client, "/workspaces/lab/lineage/results?at=v1")["steps"] == []
    assert client.get("/workspaces/nothing").status_code == 404


def test_record_directories_and_file_stores(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, made = site
    train, evaluation = made["records"]["train"], made["records"]["eval"]
    listed = api(client, "/records")["items"]
    assert [r["uuid"] for r in listed] == [train, evaluation]
    assert [r["uuid"] for r in api(client, "/records?kind=eval")["items"]] == [evaluation]
    shown = api(client, f"/records/{train}")
    assert shown["record"]["config"] == {"lr": 0.01, "model": {"depth": 4}}
    assert shown["related_by"] == [{"name": "evaluates", "uuid": evaluation, "kind": "eval"}]
    assert api(client, f"/records/{evaluation}")["relations"][0]["uuid"] == train
    committed = shown["record"]["tree"]
    assert "metrics.json" in [e["name"] for e in api(client, f"/tree/{committed}")["entries"]]
    assert [s["name"] for s in api(client, "/files")["items"]] == ["results"]
    store = api(client, "/files/results")
    (entry,) = store["items"]
    assert (entry["namespace"], entry["name"]) == ("S230518h/Prod0", "table.csv")
    assert entry["digest"] == made["file"]["table.csv"]
    assert api(client, "/files/results?namespace=S230518h")["items"] == [entry]
    assert api(client, "/files/results?namespace=other")["items"] == []


def test_health_shows_what_can_be_known_without_writing(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, made = site
    health = api(client, "/health")
    assert health["keep"]["algorithm"] == "blake3"
    assert [p["digest"] for p in health["pins"]] == [made["tree"]]
    assert health["quarantine"] == [] and health["remotes"] == []
    assert health["reports"] == {}  # no whole-keep check has run yet
    page = ok(client, "/health")
    assert "nothing set aside" in page and "never run on this keep" in page


def test_health_shows_the_last_fsck_verify_and_gc(tmp_path: Path, index_url: str | None) -> None:
    with datakeep.init(tmp_path, index=index_url) as keep:
        good = keep.put(os.urandom(100_000)).digest
        bad = keep.put(os.urandom(100_000)).digest
        keep.pin(good)
        damage(blob_path(keep, bad), b"rotten")
        assert not keep.verify_many().ok
        keep.gc(grace_s=0, dry_run=True)  # a dry run changes nothing: not kept
        assert "gc" not in keep.last_reports()
        keep.fsck(repair_index=True)
        keep.gc(grace_s=0)
    read_only = open_read_only(tmp_path)
    with TestClient(create_app(read_only, close_keep=True), base_url="http://127.0.0.1") as client:
        reports = api(client, "/health")["reports"]
        page = ok(client, "/health")
    assert reports["verify"]["ok"] is False and reports["verify"]["checked"] == 2
    assert [p["digest"] for p in reports["verify"]["problems"]] == [bad]
    assert reports["fsck"]["corrupted"] == 1 and reports["fsck"]["repairs"] == 2
    assert reports["gc"]["live"] == 1 and reports["gc"]["swept"] == 0
    assert all(r["at"] > 0 for r in reports.values())
    assert "damage found" in page and bad.partition(":")[2] in page


def test_every_page_has_its_json_twin(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = site
    for url in ("/content", "/runs", "/workspaces", "/records", "/files", "/health"):
        page = ok(client, url)
        assert f'href="/api{url}"' in page
        assert isinstance(api(client, url), dict)
    home = client.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/content"


def test_json_api_output_is_plain_json(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, made = site
    raw = client.get(f"/api/tree/{made['tree']}/readme.txt").content
    assert json.load(io.BytesIO(raw))["entry"]["path"] == "readme.txt"


def test_a_keep_whose_bytes_are_in_s3(
    tmp_path: Path,
    index_url: str | None,
    s3: S3Endpoint,  # noqa: F811
) -> None:
    import obstore

    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("kept in a bucket\n")
    blobs = f"s3://{s3.new_bucket()}/team/keep"
    with datakeep.init(tmp_path, index=index_url, blobs=blobs, endpoint=s3.url) as keep:
        tree = keep.put_tree(data).digest
        large = keep.put(b"large object\n" * 20_000).digest  # an object of its own
    with TestClient(
        create_app(open_read_only(tmp_path), close_keep=True), base_url="http://127.0.0.1"
    ) as client:
        assert api(client, f"/tree/{tree}/notes.txt")["preview"]["text"] == "kept in a bucket\n"
        assert client.get(f"/raw/{tree}/notes.txt").content == b"kept in a bucket\n"
        assert client.get(f"/raw/{large}").content == b"large object\n" * 20_000
        assert api(client, "/health")["quarantine"] == []
        keep = client.app.state.served.keep  # type: ignore[attr-defined]
        backend = keep.store.backend
        obstore.put(backend._store, keep.store.key_of(large), b"LARGE OBJECT\n" * 20_000)
        damaged = client.get(f"/raw/{large}")
        assert damaged.status_code == 500 and b"LARGE OBJECT" not in damaged.content
