"""Workspaces through remotes: push, pull and clone, on both indexes, with a directory
remote and the S3 test endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import datakeep
from datakeep.errors import InvalidInput, NotFound
from datakeep.keep import Keep
from datakeep.workspaces import UncommittedChanges, Workspace

from .conftest import Where


@pytest.fixture
def ws(keep: Keep, where: Where) -> Iterator[Workspace]:
    with Workspace.init(keep.path.parent, "lab", keep=keep) as workspace:
        location, endpoint = where("origin")
        keep.add_remote("origin", location, endpoint)
        data = workspace.add_resource("data", "source-data", "data").path
        workspace.add_resource("results", "results", "results")
        for n in range(30):  # small files travel in packs
            (data / f"part-{n:02}.csv").write_text(f"{n},{n * n}\n")
        (data / "big.bin").write_bytes(bytes(range(256)) * 8192)
        (data / "odd name\nü.txt").write_text("odd")
        (workspace.root / "results/metrics.json").write_text('{"acc": 0.9}')
        workspace.snapshot("v1", message="first", metrics={"acc": 0.9})
        yield workspace


def _clone(ws: Workspace, dest: Path, **kwargs: object) -> Workspace:
    origin = ws.keep.remote("origin")
    endpoint = origin.config.get("endpoint")
    return Workspace.clone(origin.location, dest, endpoint=endpoint, **kwargs)  # type: ignore[arg-type]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".datakeep" not in p.parts and not p.name.startswith(".datakeep-")
    }


def test_push_then_clone_restores_the_newest_snapshot(ws: Workspace, tmp_path: Path) -> None:
    assert ws.push() == 1
    assert ws.push() == 0  # nothing new the second time
    with _clone(ws, tmp_path / "clone") as clone:
        assert _tree(clone.root) == _tree(ws.root)
        assert [(s.tags, s.message, s.metrics) for s in clone.history()] == [
            (("v1",), "first", {"acc": 0.9})
        ]
        assert [(r.name, r.role) for r in clone.resources()] == [
            ("data", "source-data"),
            ("results", "results"),
        ]
        assert clone.status() == {} and clone.head() is not None
        assert clone.keep.verify_many().ok


def test_clone_puts_resources_where_asked_and_names_a_snapshot(
    ws: Workspace, tmp_path: Path
) -> None:
    (ws.root / "data/part-00.csv").write_text("changed")
    ws.snapshot("v2")
    ws.push()
    elsewhere = tmp_path / "scratch/data"
    with _clone(ws, tmp_path / "clone", snapshot="v1", paths={"data": elsewhere}) as clone:
        assert (elsewhere / "part-00.csv").read_text() == "0,0\n"
        assert not (clone.root / "data").exists()
        assert clone.head() is not None and clone.head().tags == ("v1",)  # type: ignore[union-attr]
        assert clone.status() == {}


def test_pull_brings_snapshots_and_refuses_to_overwrite_changes(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.push()
    with _clone(ws, tmp_path / "clone") as clone:
        (clone.root / "data/part-01.csv").write_text("from the clone")
        made = clone.snapshot("from-clone")
        clone.push()
    (ws.root / "data/part-02.csv").write_text("local, not snapshotted")
    with pytest.raises(UncommittedChanges, match="data"):
        ws.pull()
    assert (ws.root / "data/part-02.csv").read_text() == "local, not snapshotted"
    assert (ws.root / "data/part-01.csv").read_text() == "1,1\n"
    assert [s.hash for s in ws.history()] != [made] and len(ws.history()) == 1
    ws.restore("v1", force=True)
    assert ws.pull() == [made]
    assert (ws.root / "data/part-01.csv").read_text() == "from the clone"
    assert ws.head() is not None and ws.head().tags == ("from-clone",)  # type: ignore[union-attr]
    assert ws.pull() == []


def test_two_clones_pushing_to_one_remote_lose_neither(ws: Workspace, tmp_path: Path) -> None:
    ws.push()
    made = []
    for side in ("left", "right"):
        with _clone(ws, tmp_path / side) as clone:
            (clone.root / f"data/{side}.txt").write_text(side)
            made.append(clone.snapshot(side))
            clone.push()
    ws.pull(force=True)
    tags = {s.hash: s.tags for s in ws.history()}
    assert tags[made[0]] == ("left",) and tags[made[1]] == ("right",) and len(tags) == 3
    ws.restore("left", force=True)
    assert (ws.root / "data/left.txt").read_text() == "left"
    assert not (ws.root / "data/right.txt").exists()


def test_tags_added_after_a_push_travel_with_the_next(ws: Workspace, tmp_path: Path) -> None:
    ws.push()
    ws.snapshot("release")  # unchanged: the same snapshot gets a second tag
    ws.push()
    with _clone(ws, tmp_path / "clone") as clone:
        assert set(clone.history()[0].tags) == {"v1", "release"}


def test_workspace_entries_do_not_disturb_the_keeps_own_transfers(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.push()
    origin = ws.keep.remote("origin")
    with datakeep.init(tmp_path / "fresh") as fresh:
        fresh.add_remote("origin", origin.location, origin.config.get("endpoint"))
        report = fresh.pull("origin", everything=True)
        assert report.transferred > 30
        assert fresh.exists(ws.find_snapshot("v1").hash)
        assert ws.keep.verify_remote("origin").ok


def test_clone_errors_leave_nothing_behind(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no workspace"):
        _clone(ws, tmp_path / "empty-remote")  # nothing pushed yet
    assert not (tmp_path / "empty-remote").exists()
    ws.push()
    with pytest.raises(NotFound, match="lab"):
        _clone(ws, tmp_path / "wrong", name="other")
    assert not (tmp_path / "wrong").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/file").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        _clone(ws, tmp_path / "busy")
    assert (tmp_path / "busy/file").read_text() == "mine"
