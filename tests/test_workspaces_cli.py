"""``datakeep ws``: the workspace commands, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_cli


def _ws(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    root.mkdir()
    run_cli("ws", "init", "lab", cwd=root)
    run_cli("ws", "add", "source-data", "data", "data", cwd=root)
    run_cli("ws", "add", "results", "results", "results", cwd=root)
    (root / "data/a.csv").write_text("x\n1\n")
    return root


def _json(*args: str, cwd: Path) -> object:
    return json.loads(run_cli(*args, "--json", cwd=cwd).stdout)


def test_snapshot_history_status_restore(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    assert _json("ws", "status", cwd=root) == {
        "data": {"added": ["a.csv"], "changed": [], "removed": []}
    }
    (root / "results/metrics.json").write_text("{}")
    taken = _json("ws", "snapshot", "-m", "first", "--metric", "acc=0.91", "v1", cwd=root)
    assert isinstance(taken, dict) and taken["tags"] == ["v1"] and taken["metrics"] == {"acc": 0.91}
    assert run_cli("ws", "status", cwd=root).stdout.decode().strip() == "no changes"
    (root / "data/a.csv").write_text("x\n2\n")
    assert "M a.csv" in run_cli("ws", "status", cwd=root).stdout.decode()
    refused = run_cli("ws", "restore", "v1", cwd=root, check=False)
    assert refused.returncode == 1
    assert refused.stderr.decode().startswith("datakeep: error: changes not snapshotted")
    assert len(refused.stderr.decode().splitlines()) == 1
    assert (root / "data/a.csv").read_text() == "x\n2\n"
    run_cli("ws", "snapshot", "v2", cwd=root)
    diff = _json("ws", "diff", "v1", "v2", cwd=root)
    assert diff == {"data": {"added": [], "changed": ["a.csv"], "removed": []}}
    run_cli("ws", "restore", "v1", cwd=root)
    assert (root / "data/a.csv").read_text() == "x\n1\n"
    history = _json("ws", "history", cwd=root)
    assert isinstance(history, list) and [h["tags"] for h in history] == [["v2"], ["v1"]]
    lines = run_cli("ws", "history", "-n", "1", "--oldest-first", cwd=root).stdout.decode()
    assert lines.split()[0] == "1" and "v1" in lines and "acc=0.91" in lines
    run_cli("ws", "untag", "v2", "v2", cwd=root)
    assert [h["tags"] for h in _json("ws", "history", cwd=root)] == [[], ["v1"]]  # type: ignore[union-attr]
    run_cli("ws", "delete-snapshot", "v1", cwd=root)
    assert len(_json("ws", "history", cwd=root)) == 1  # type: ignore[arg-type]


def test_lineage_graph_as_text_dot_and_json(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    script = (
        "from datakeep.workspaces import Workspace\n"
        "with Workspace.open('.') as ws:\n"
        "    with ws.lineage.step('train', {'lr': 0.1}, inputs=['data'], outputs=['results']):\n"
        "        open('results/m.json', 'w').write('{}')\n"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], cwd=root, check=True)
    text = run_cli("ws", "lineage", "results", cwd=root).stdout.decode()
    assert text.splitlines()[0] == "train lr=0.1" and "reads  data @ pending:" in text
    dot = run_cli("ws", "lineage", "results", "--dot", cwd=root).stdout.decode()
    assert dot.startswith("digraph lineage {") and '"data" -> step_' in dot
    found = _json("ws", "lineage", "results", cwd=root)
    assert isinstance(found, dict) and [s["step"] for s in found["steps"]] == ["train"]


def test_push_clone_pull(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    remote = tmp_path / "remote"
    run_cli("remote", "add", "origin", str(remote), cwd=root)
    run_cli("ws", "snapshot", "v1", cwd=root)
    assert _json("ws", "push", cwd=root) == {"new_snapshots": 1}
    out = run_cli("ws", "clone", str(remote), str(tmp_path / "copy"), cwd=tmp_path)
    assert "cloned workspace lab" in out.stdout.decode()
    assert _json("ws", "pull", cwd=tmp_path / "copy") == {"new_snapshots": []}
    assert (tmp_path / "copy/data/a.csv").read_text() == "x\n1\n"
    (tmp_path / "copy/data/a.csv").write_text("x\n3\n")
    run_cli("ws", "snapshot", "v3", cwd=tmp_path / "copy")
    run_cli("ws", "push", cwd=tmp_path / "copy")
    assert "pulled 1 new" in run_cli("ws", "pull", cwd=root).stdout.decode()
    assert (root / "data/a.csv").read_text() == "x\n3\n"


def test_usage_and_input_errors(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    bad_role = run_cli("ws", "add", "weights", "w", "w", cwd=root, check=False)
    assert bad_role.returncode == 2 and "weights" in bad_role.stderr.decode()
    bad_metric = run_cli("ws", "snapshot", "--metric", "noequals", cwd=root, check=False)
    assert bad_metric.returncode == 2 and "KEY=VALUE" in bad_metric.stderr.decode()
    unknown = run_cli("ws", "restore", "nope", cwd=root, check=False)
    assert unknown.returncode == 1 and "no snapshot tagged 'nope'" in unknown.stderr.decode()
    outside = run_cli("ws", "status", cwd=tmp_path, check=False)
    assert outside.returncode == 1 and "no workspace" in outside.stderr.decode()
