"""``datakeep runs``: tables for people, JSON for scripts, JSON Lines export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import datakeep
from datakeep.runs import ExecutionJob, MasterJob, Project, Record, RunStore

from .conftest import run_cli


@pytest.fixture
def factory(tmp_path: Path, index_url: str | None) -> Path:
    with RunStore(datakeep.init(tmp_path, index=index_url), owns_keep=True) as runs:
        runs.save_project(Project("qa", "Question answering"))
        runs.log_master_job_start(MasterJob("m1", "qa", status="running"))
        runs.log_execution_job_start(ExecutionJob("j1", "m1", status="running"))
        batch = [Record(f"r{i}", "j1", "m1", "completed" if i < 3 else "failed") for i in range(4)]
        runs.log_records(batch, {f"r{i}": {"q": f"question {i}", "a": i} for i in range(3)})
        runs.log_master_job_end("m1", "completed_with_errors", {"note": "one failed"})
    return tmp_path


def test_lists_as_tables_and_json(factory: Path) -> None:
    table = run_cli("runs", "projects", cwd=factory).stdout.decode()
    assert "qa" in table and "Question answering" in table
    jobs = json.loads(run_cli("runs", "jobs", "--project", "qa", "--json", cwd=factory).stdout)
    assert [(j["master_job_id"], j["status"], j["total_record_count"]) for j in jobs] == [
        ("m1", "completed_with_errors", 4)
    ]
    execution = json.loads(run_cli("runs", "jobs", "--master", "m1", "--json", cwd=factory).stdout)
    assert [j["job_id"] for j in execution] == ["j1"]
    failed = run_cli("runs", "records", "m1", "--status", "failed", "--json", cwd=factory)
    assert [r["record_uid"] for r in json.loads(failed.stdout)] == ["r3"]
    first = run_cli("runs", "records", "m1", "--limit", "2", cwd=factory)
    assert b"more: --after" in first.stderr
    after = first.stderr.decode().split("--after")[1].strip()
    rest = run_cli("runs", "records", "m1", "--after", after, "--json", cwd=factory)
    assert [r["record_uid"] for r in json.loads(rest.stdout)] == ["r1", "r0"]  # newest first
    oldest = run_cli(
        "runs", "records", "m1", "--order", "oldest", "--limit", "1", "--json", cwd=factory
    )
    assert [r["record_uid"] for r in json.loads(oldest.stdout)] == ["r0"]


def test_show_and_export(factory: Path) -> None:
    shown = json.loads(run_cli("runs", "show", "m1", "--json", cwd=factory).stdout)
    assert shown["record_counts"]["completed"] == 3 and shown["record_counts"]["failed"] == 1
    assert shown["master_job"]["summary"] == {"note": "one failed"}
    record = json.loads(run_cli("runs", "show", "r1", "--json", cwd=factory).stdout)
    assert record["data"] == {"q": "question 1", "a": 1}
    run_cli("runs", "export", "m1", "out.jsonl", cwd=factory)
    lines = [json.loads(line) for line in (factory / "out.jsonl").read_text().splitlines()]
    assert [(r["record_uid"], r["data"]) for r in lines] == [
        ("r0", {"q": "question 0", "a": 0}),
        ("r1", {"q": "question 1", "a": 1}),
        ("r2", {"q": "question 2", "a": 2}),
        ("r3", None),
    ]
    stdout = run_cli("runs", "export", "m1", "--status", "failed", cwd=factory).stdout
    assert [json.loads(line)["record_uid"] for line in stdout.splitlines()] == ["r3"]


def test_unknown_names_are_one_line_errors(factory: Path) -> None:
    for args in (["show", "nothing"], ["export", "nothing"], ["records", "m1", "--job", "j9"]):
        result = run_cli("runs", *args, cwd=factory, check=False)
        assert result.returncode == 1, args
        assert result.stderr.decode().startswith("datakeep: error: no ")
        assert b"Traceback" not in result.stderr
    bad = run_cli("runs", "records", "m1", "--status", "done", cwd=factory, check=False)
    assert bad.returncode == 1 and b"not a filter status" in bad.stderr
