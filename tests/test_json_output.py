"""Every command's ``--json`` output parses and matches its schema in docs/json.md, and
every command that takes ``--json`` has a schema there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner

from datakeep.cli import cli

DOC = Path(__file__).parent.parent / "docs" / "json.md"
_SECTION = re.compile(
    r"^## `datakeep (?P<name>[^`]+)`\n\n```json\n(?P<schema>.*?)\n```", re.M | re.S
)
JSON_LINES = {"put", "ls"}


def _schemas() -> dict[str, Any]:
    return {m["name"]: json.loads(m["schema"]) for m in _SECTION.finditer(DOC.read_text())}


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_with_json_has_a_schema() -> None:
    documented = _schemas()
    takes_json = {n for n, c in _commands(cli) if any(p.name == "as_json" for p in c.params)}
    assert takes_json - set(documented) == set()
    for schema in documented.values():
        jsonschema.Draft202012Validator.check_schema(schema)


class _Session:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runner = CliRunner()
        self.monkeypatch = monkeypatch
        self.outputs: dict[str, list[Any]] = {}

    def run(self, name: str, args: list[str], cwd: Path) -> Any:
        self.monkeypatch.chdir(cwd)
        result = self.runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, (name, result.output)
        if name in JSON_LINES:
            docs = [json.loads(line) for line in result.stdout.splitlines()]
        else:
            docs = [json.loads(result.stdout)]
        self.outputs.setdefault(name, []).extend(docs)
        return docs[0]


def test_every_report_matches_its_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _Session(monkeypatch)
    k = tmp_path / "k"
    s.run("init", ["init", str(k)], tmp_path)
    for d, files in {"data": {"a.txt": "a", "b.txt": "bb"}, "data2": {"a.txt": "A"}}.items():
        (k / d).mkdir()
        for f, text in files.items():
            (k / d / f).write_text(text)
    (k / "one.txt").write_text("one")
    s.run("put", ["put", "data", "data2", "one.txt", "--tag", "run=1"], k)
    tree, tree2, blob = (c["digest"] for c in s.outputs["put"])
    s.run("get", ["get", tree[7:19], "out"], k)
    for name, args in (
        ("ls", ["ls"]),
        ("info", ["info", tree]),
        ("verify", ["verify", tree]),
        ("tag", ["tag", blob, "stage=raw"]),
        ("untag", ["untag", blob, "stage"]),
        ("diff", ["diff", tree, tree2]),
        ("fsck", ["fsck"]),
        ("repair", ["repair"]),
        ("gc", ["gc", "--dry-run"]),
        ("pin", ["pin", blob]),
        ("pin", ["pin"]),
        ("unpin", ["unpin", blob]),
        ("remote add", ["remote", "add", "origin", str(tmp_path / "remote")]),
        ("remote ls", ["remote", "ls"]),
        ("push", ["push"]),
        ("pull", ["pull"]),
        ("verify --remote", ["verify", "--remote", "origin"]),
        ("remote rm", ["remote", "rm", "origin"]),
    ):
        s.run(name, args, k)
    from datakeep.records import RecordStore
    from datakeep.runs import ExecutionJob, MasterJob, Project, Record, RunStore

    with RunStore.open(k) as runs:
        runs.save_project(Project("qa", "QA"))
        runs.log_master_job_start(MasterJob("m1", "qa"))
        runs.log_execution_job_start(ExecutionJob("j1", "m1"))
        runs.log_records([Record("r1", "j1", "m1", "completed")], {"r1": {"a": 1}})
    for name, args in (
        ("runs projects", ["runs", "projects"]),
        ("runs jobs", ["runs", "jobs"]),
        ("runs jobs", ["runs", "jobs", "--master", "m1"]),
        ("runs records", ["runs", "records", "m1"]),
        ("runs show", ["runs", "show", "m1"]),
        ("runs show", ["runs", "show", "r1"]),
        ("files init", ["files", "init", "O4"]),
    ):
        s.run(name, args, k)
    where = ["S1", "Prod0"]
    added = s.run("files add", ["files", "add", *where, "one.txt", "--store", "O4"], k)
    s.run("files fetch", ["files", "fetch", *where, "one.txt", "--store", "O4"], k)
    s.run("files ls", ["files", "ls", *where, "--store", "O4"], k)
    s.run("files info", ["files", "info", added["uuid"]], k)
    s.run("files manifest", ["files", "manifest", "--store", "O4"], k)
    with RecordStore.open(k) as records:
        trained = records.create("train", {"lr": 0.1})
        records.save_file(trained, "m.json", {"acc": 1})
        records.commit(trained, mirror=False)
        evaluated = records.create("eval", {"split": "test"})
        records.relate("evaluates", evaluated, trained)
    for name, args in (
        ("records ls", ["records", "ls"]),
        ("records show", ["records", "show", trained]),
        ("records get", ["records", "get", trained, str(tmp_path / "rec")]),
        ("records verify", ["records", "verify"]),
        ("records reindex", ["records", "reindex"]),
        ("records related", ["records", "related", evaluated]),
    ):
        s.run(name, args, k)
    w = tmp_path / "w"
    w.mkdir()
    s.run("ws init", ["ws", "init", "lab"], w)
    s.run("ws add", ["ws", "add", "source-data", "data", "data"], w)
    (w / "data" / "f.csv").write_text("x\n")
    s.run("ws resources", ["ws", "resources"], w)
    s.run("ws status", ["ws", "status"], w)
    s.run("ws snapshot", ["ws", "snapshot", "v1", "-m", "first", "--metric", "acc=0.5"], w)
    (w / "data" / "f.csv").write_text("y\n")
    s.run("ws snapshot", ["ws", "snapshot", "v2"], w)
    for name, args in (
        ("ws diff", ["ws", "diff", "v1", "v2"]),
        ("ws history", ["ws", "history"]),
        ("ws restore", ["ws", "restore", "v1"]),
        ("ws untag", ["ws", "untag", "v2", "v2"]),
        ("ws lineage", ["ws", "lineage", "data"]),
        ("remote add", ["remote", "add", "origin", str(tmp_path / "wsremote")]),
        ("ws push", ["ws", "push"]),
        ("ws pull", ["ws", "pull"]),
    ):
        s.run(name, args, w)
    s.run("ws clone", ["ws", "clone", str(tmp_path / "wsremote"), str(tmp_path / "c")], tmp_path)
    s.run("ws delete-snapshot", ["ws", "delete-snapshot", "v1"], w)
    schemas = _schemas()
    for name, docs in s.outputs.items():
        for doc in docs:
            jsonschema.validate(doc, schemas[name])
    assert set(schemas) == set(s.outputs)  # every schema was checked against real output
