"""``datakeep diff`` of two trees, and paths shown quoted as git quotes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from datakeep.keep import Keep
from datakeep.trees.diff import diff_trees

from .conftest import run_cli


def _two_trees(root: Path) -> tuple[Path, Path]:
    old, new = root / "old", root / "new"
    for tree in (old, new):
        (tree / "sub").mkdir(parents=True)
        (tree / "same.txt").write_text("same")
        (tree / "sub" / "changed.csv").write_text("a,b\n" if tree == old else "a,b\n1,2\n")
        (tree / "run.sh").write_text("#!/bin/sh\n")
    (old / "gone.txt").write_text("gone")
    (new / "line\nbreak.txt").write_text("new, oddly named")
    (new / "run.sh").chmod(0o755)
    (old / "run.sh").chmod(0o644)
    return old, new


def test_diff_of_two_trees(keep: Keep, tmp_path: Path) -> None:
    old, new = _two_trees(tmp_path)
    a, b = keep.put_tree(old).digest, keep.put_tree(new).digest
    found = diff_trees(keep.store, a, b)
    assert [e.path for e in found.added] == ["line\nbreak.txt"]
    assert [e.path for e in found.removed] == ["gone.txt"]
    assert [after.path for _, after in found.changed] == ["sub/changed.csv"]
    assert [(x.mode, y.mode) for x, y in found.mode_changed] == [(0o644, 0o755)]
    assert not diff_trees(keep.store, a, a)


def test_diff_on_the_command_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    _two_trees(project)
    run_cli("init", cwd=project)
    a = run_cli("put", "old", cwd=project).stdout.split()[0].decode()
    b = run_cli("put", "new", cwd=project).stdout.split()[0].decode()
    text = run_cli("diff", a[7:15], b, cwd=project).stdout.decode()
    assert text.splitlines() == [
        "- gone.txt",
        '+ "line\\nbreak.txt"',
        "m run.sh",
        "M sub/changed.csv",
    ]
    raw = run_cli("diff", a, b, "-z", cwd=project).stdout
    assert b"+ line\nbreak.txt\0" in raw
    stat = run_cli("diff", a, b, "--stat", cwd=project).stdout.decode()
    assert stat.startswith("1 added, 1 removed, 1 changed, 1 mode changed")
    doc = json.loads(run_cli("diff", a, b, "--json", cwd=project).stdout)
    assert doc["added"][0]["path"] == "line\nbreak.txt"
    assert doc["mode_changed"] == [{"path": "run.sh", "old_mode": "644", "new_mode": "755"}]
    blob = run_cli("put", os.path.join("old", "same.txt"), cwd=project).stdout.split()[0]
    refused = run_cli("diff", a, blob.decode(), cwd=project, check=False)
    assert refused.returncode == 1 and b"is not a tree" in refused.stderr
