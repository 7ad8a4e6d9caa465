"""Workspaces: resources, status, snapshots, restore, results, history and tags, on both
indexes. Lineage and remotes have their own files."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from datakeep.errors import AlreadyExists, IntegrityError, InvalidInput, InvalidPath, NotFound
from datakeep.keep import Keep
from datakeep.workspaces import (
    AmbiguousSnapshot,
    AsyncWorkspace,
    TagInUse,
    UncommittedChanges,
    Workspace,
)
from datakeep.workspaces.schema import snapshots

from .conftest import blob_path, damage


@pytest.fixture
def ws(keep: Keep) -> Iterator[Workspace]:
    with Workspace.init(keep.path.parent, "lab", keep=keep) as workspace:
        yield workspace


def _files(root: Path) -> dict[str, tuple[str, int, bytes | str | None]]:
    """Every entry under ``root``: kind, permission bits and content (a link's target)."""
    found: dict[str, tuple[str, int, bytes | str | None]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("l", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("d", stat.S_IMODE(st.st_mode), None)
            else:
                found[rel] = ("f", stat.S_IMODE(st.st_mode), path.read_bytes())
    return found


def _fill(root: Path) -> None:
    (root / "sub dir").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub dir/ünï cödé.csv").write_text("x,y\n1,2\n")
    (root / "line\nbreak.txt").write_text("odd name")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    (root / "link").symlink_to("a.txt")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))


# -- resources -----------------------------------------------------------------------------
def test_resources_are_added_listed_and_validated(ws: Workspace, tmp_path: Path) -> None:
    data = ws.add_resource("data", "source-data", "data")
    assert data.path == ws.root / "data" and data.path.is_dir()
    ws.add_resource("model", "intermediate-data", "work/model")
    assert [(r.name, r.role, r.stored_path) for r in ws.resources()] == [
        ("data", "source-data", "data"),
        ("model", "intermediate-data", "work/model"),
    ]
    with pytest.raises(AlreadyExists):
        ws.add_resource("data", "code", "other")
    with pytest.raises(InvalidInput, match="role"):
        ws.add_resource("x", "weights", "x")
    with pytest.raises(InvalidInput, match="name"):
        ws.add_resource("../x", "code", "x")
    with pytest.raises(InvalidPath, match="overlaps"):
        ws.add_resource("inner", "code", "data/inner")
    with pytest.raises(InvalidPath, match="overlaps"):
        ws.add_resource("outer", "code", "work")
    with pytest.raises(InvalidPath, match="root"):
        ws.add_resource("all", "code", ".")
    with pytest.raises(InvalidPath, match="keep"):
        ws.add_resource("keep", "code", ".datakeep")
    with pytest.raises(InvalidPath, match="outside"):
        ws.add_resource("far", "code", tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="endpoint"):
        ws.add_resource("x", "code", "x", endpoint="http://127.0.0.1:9")
    assert not (ws.root / "x").exists() and not (tmp_path / "elsewhere").exists()
    far = ws.add_resource("far", "code", tmp_path / "elsewhere", allow_outside=True)
    assert far.stored_path == str(tmp_path / "elsewhere")
    assert len(ws.resources()) == 3


def test_two_workspaces_on_one_index_add_resources_side_by_side(
    ws: Workspace, tmp_path: Path
) -> None:
    other = Workspace.open(ws.root)
    ws.add_resource("a", "code", "a")
    other.add_resource("b", "code", "b")
    assert [r.name for r in Workspace.open(ws.root).resources()] == ["a", "b"]
    other.close()


def test_workspaces_sharing_one_keep_keep_their_own_history(keep: Keep, tmp_path: Path) -> None:
    with (
        Workspace.init(tmp_path / "a", "alpha", keep=keep.path.parent) as a,
        Workspace.init(tmp_path / "b", "beta", keep=keep.path.parent) as b,
    ):
        for ws in (a, b):
            (ws.add_resource("data", "source-data", "data").path / "f").write_text(ws.name)
            ws.snapshot("v1")
        assert a.find_snapshot("v1").hash != b.find_snapshot("v1").hash
        assert [len(a.history()), len(b.history())] == [1, 1]
        assert not (tmp_path / "a/.datakeep").exists()  # the shared keep holds both
    with Workspace.open(tmp_path / "b") as again:
        assert again.keep.path == keep.path and again.name == "beta"


def test_open_finds_the_workspace_from_inside(ws: Workspace) -> None:
    ws.add_resource("data", "source-data", "data/raw")
    with Workspace.open(ws.root / "data" / "raw") as found:
        assert found.name == "lab" and found.root == ws.root
    with pytest.raises(AlreadyExists):
        Workspace.init(ws.root)


def test_open_outside_a_workspace_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="ws init"):
        Workspace.open(tmp_path)


# -- status and snapshots ------------------------------------------------------------------
def test_status_lists_added_changed_and_removed(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    _fill(data)
    first = ws.status()["data"]
    assert "a.txt" in first.added and "line\nbreak.txt" in first.added
    ws.snapshot("v1")
    assert ws.status() == {}
    (data / "a.txt").write_text("ALPHA")
    (data / "new.txt").write_text("new")
    (data / "sub dir/ünï cödé.csv").unlink()
    (data / "run.sh").chmod(0o644)
    changes = ws.status()["data"]
    assert changes.added == ["new.txt", "sub dir"]  # now an empty directory
    assert changes.changed == ["a.txt", "run.sh"]
    assert changes.removed == ["sub dir/ünï cödé.csv"]


def test_restore_makes_the_directory_exactly_as_snapshotted(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    _fill(data)
    ws.snapshot("v1", message="first")
    before = _files(data)
    # every kind of change: content, mode, added, removed, a file where a directory was
    (data / "a.txt").write_text("changed")
    (data / "run.sh").chmod(0o600)
    (data / "added.txt").write_text("added")
    (data / "deep/er").mkdir(parents=True)
    (data / "deep/er/f").write_text("f")
    (data / "big.bin").unlink()
    (data / "empty").rmdir()
    (data / "empty").write_text("now a file")
    os.remove(data / "link")
    (data / "link").symlink_to("run.sh")
    ws.snapshot("v2")
    after = _files(data)
    ws.restore("v1")
    assert _files(data) == before
    assert ws.status() == {}
    ws.restore("v2")
    assert _files(data) == after


def test_restore_of_a_deleted_directory_copies_or_links(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    _fill(data)
    ws.snapshot("v1")
    before = _files(data)
    import shutil

    shutil.rmtree(data)
    ws.restore("v1")  # nothing is lost: what was removed is in the snapshot
    assert _files(data) == before
    shutil.rmtree(data)
    ws.restore("v1", link="hardlink")
    assert _files(data)["big.bin"][2] == before["big.bin"][2]
    assert (data / "big.bin").stat().st_nlink == 2  # shared with the keep, read-only
    assert ws.status() == {}
    # the keep's read-only mode is not the file's: the same snapshot again, modes kept
    assert ws.snapshot("again") == ws.find_snapshot("v1").hash
    (data / "a.txt").unlink()
    (data / "a.txt").write_text("changed")
    changed = ws.snapshot("v2")
    assert ws.manifest(changed).trees() != ws.manifest("v1").trees()
    shutil.rmtree(data)
    ws.restore("v2")
    assert _files(data)["big.bin"] == before["big.bin"]  # 0644 as it was put, not 0444


def test_restore_refuses_to_overwrite_changes_unless_forced(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    (data / "a.txt").write_text("one")
    ws.snapshot("v1")
    (data / "a.txt").write_text("two")
    ws.snapshot("v2")
    (data / "a.txt").write_text("three, not snapshotted")
    with pytest.raises(UncommittedChanges, match="1 changed"):
        ws.restore("v1")
    assert (data / "a.txt").read_text() == "three, not snapshotted"
    ws.restore("v1", force=True)
    assert (data / "a.txt").read_text() == "one"


def test_restore_only_and_leave(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    code = ws.add_resource("code", "code", "code").path
    (data / "d").write_text("d1")
    (code / "c").write_text("c1")
    ws.snapshot("v1")
    (data / "d").write_text("d2")
    (code / "c").write_text("c2")
    ws.snapshot("v2")
    ws.restore("v1", only=["data"])
    assert ((data / "d").read_text(), (code / "c").read_text()) == ("d1", "c2")
    ws.restore("v1", leave=["data"], force=True)
    assert (code / "c").read_text() == "c1"
    with pytest.raises(NotFound, match="nothing"):
        ws.restore("v1", only=["nothing"])


def test_restore_of_a_damaged_blob_fails_before_any_file_changes(ws: Workspace, keep: Keep) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    (data / "good.txt").write_text("good")
    (data / "big.bin").write_bytes(b"b" * (2 << 20))
    ws.snapshot("v1")
    (data / "good.txt").write_text("changed")
    (data / "big.bin").write_bytes(b"c" * (2 << 20))
    ws.snapshot("v2")
    tree = keep.get(ws.manifest("v1").trees()["data"]).decode()
    big = next(line.split()[3] for line in tree.splitlines() if line.endswith("big.bin"))
    damage(blob_path(keep, big), b"x" * (2 << 20))
    with pytest.raises(IntegrityError):
        ws.restore("v1")
    assert (data / "good.txt").read_text() == "changed"
    assert (data / "big.bin").read_bytes() == b"c" * (2 << 20)
    assert not [p for p in ws.root.iterdir() if "datakeep-restore" in p.name]


def test_identical_content_merges_tags_and_tags_stay_unique(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    (data / "a").write_text("a")
    first = ws.snapshot("v1", message="first", metrics={"acc": 0.5})
    assert ws.snapshot("release") == first
    assert [(s.number, s.tags, s.message) for s in ws.history()] == [
        (1, ("release", "v1"), "first")
    ]
    (data / "a").write_text("b")
    with pytest.raises(TagInUse, match="v1"):
        ws.snapshot("v1")
    assert len(ws.history()) == 1 and ws.status()  # nothing recorded, nothing lost
    second = ws.snapshot("v2")
    ws.remove_tag(first, "release")
    assert [s.tags for s in ws.history()] == [("v2",), ("v1",)]
    with pytest.raises(NotFound):
        ws.remove_tag(second, "v1")  # v1 is not this snapshot's tag
    assert ws.find_snapshot("v1").hash == first


def test_history_is_numbered_in_either_order(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    hashes = []
    for n in range(4):
        (data / "f").write_text(str(n))
        hashes.append(ws.snapshot(f"t{n}", message=f"m{n}", metrics={"n": n}))
    newest = ws.history()
    assert [s.hash for s in newest] == hashes[::-1] and [s.number for s in newest] == [4, 3, 2, 1]
    assert [s.hash for s in ws.history(newest_first=False, max_count=2)] == hashes[:2]
    assert ws.history(max_count=1)[0].metrics == {"n": 3}
    head = ws.head()
    assert head is not None and (head.number, head.tags) == (4, ("t3",))
    assert ws.find_snapshot("t1").number == 2
    assert ws.get_results("t1") == {"n": 1}
    with pytest.raises(InvalidInput):
        ws.history(max_count=-1)


def test_snapshots_are_found_by_tag_hash_or_unique_prefix(ws: Workspace) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    (data / "f").write_text("x")
    made = ws.snapshot("v1")
    hexdigest = made.partition(":")[2]
    assert ws.find_snapshot(hexdigest[:8]).hash == made
    assert ws.find_snapshot("blake3:" + hexdigest[:8]).hash == made
    assert ws.find_snapshot(made).tags == ("v1",)
    with pytest.raises(NotFound):
        ws.find_snapshot("0000000000")
    # two snapshots whose hashes share a prefix (rows made to order): the prefix is refused
    twins = ["blake3:abcdef" + "1" * 58, "blake3:abcdef" + "2" * 58]
    with ws.db.write() as conn:
        for n, twin in enumerate(twins):
            conn.execute(
                insert(snapshots).values(
                    workspace="lab", hash=twin, message="", created_at=n, metrics={}
                )
            )
    with pytest.raises(AmbiguousSnapshot) as caught:
        ws.find_snapshot("abcdef")
    assert all(t in str(caught.value) for t in twins)
    assert ws.find_snapshot("abcdef1").hash == twins[0]


# -- results -------------------------------------------------------------------------------
def test_results_move_into_a_subdirectory_per_snapshot_and_are_never_restored(
    ws: Workspace,
) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    results = ws.add_resource("results", "results", "results").path
    (data / "d").write_text("1")
    (results / "metrics.json").write_text('{"acc": 0.5}')
    ws.snapshot("v1", metrics={"acc": 0.5})
    subdir = ws.results_subdir("v1")
    assert subdir is not None and subdir.startswith("snapshots/") and subdir.endswith("-v1")
    assert (results / subdir / "metrics.json").read_text() == '{"acc": 0.5}'
    assert not (results / "metrics.json").exists()
    (data / "d").write_text("2")
    (results / "metrics.json").write_text('{"acc": 0.7}')
    ws.snapshot("v2")
    later = _files(results)
    ws.restore("v1")
    assert _files(results) == later  # additive: both snapshots' results stay
    assert ws.status() == {}  # and are no change: results are compared with the newest
    assert (data / "d").read_text() == "1"
    with pytest.raises(InvalidInput, match="results"):
        ws.restore("v2", only=["results"])


def test_results_template_is_configurable_and_checked(ws: Workspace) -> None:
    results = ws.add_resource("results", "results", "results").path
    with pytest.raises(InvalidInput):
        ws.results_template = "{nope}"
    with pytest.raises(InvalidInput):
        ws.results_template = "../{tag}"
    ws.results_template = "runs/{number}-{tag}"
    (results / "r.txt").write_text("r")
    ws.snapshot("exp")
    assert ws.results_subdir("exp") == "runs/1-exp"
    assert Workspace.open(ws.root).results_template == "runs/{number}-{tag}"


def test_a_failed_snapshot_leaves_no_snapshot_and_results_where_they_were(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    results = ws.add_resource("results", "results", "results").path
    (data / "d").write_text("1")
    (results / "m.json").write_text("{}")
    (results / "plots").mkdir()
    (results / "plots/p.png").write_bytes(b"png")
    before = _files(results)
    # a bad file: a named pipe cannot be stored
    os.mkfifo(data / "pipe")
    with pytest.raises(InvalidPath, match="pipe"):
        ws.snapshot("v1")
    assert ws.history() == [] and _files(results) == before
    (data / "pipe").unlink()
    # a failure after the results moved: the index refuses the commit
    from datakeep.workspaces import snapshot as taking

    def refuse(*args: object) -> None:
        raise IntegrityError("the index went away")

    monkeypatch.setattr(taking, "_commit", refuse)
    with pytest.raises(IntegrityError):
        ws.snapshot("v1")
    assert ws.history() == [] and _files(results) == before
    monkeypatch.undo()
    ws.snapshot("v1")
    assert len(ws.history()) == 1 and not (results / "m.json").exists()


def test_delete_snapshot_removes_its_results_and_lets_gc_reclaim(ws: Workspace, keep: Keep) -> None:
    data = ws.add_resource("data", "source-data", "data").path
    results = ws.add_resource("results", "results", "results").path
    (data / "only-in-v1.bin").write_bytes(os.urandom(200_000))
    (results / "r.txt").write_text("r1")
    first = ws.snapshot("v1")
    subdir = ws.results_subdir("v1")
    assert subdir is not None
    (data / "only-in-v1.bin").unlink()
    (data / "kept.bin").write_bytes(os.urandom(200_000))
    ws.snapshot("v2")
    assert keep.gc(grace_s=0).swept == []  # every snapshot's trees are roots
    v1_tree = ws.manifest("v1").trees()["data"]
    ws.delete_snapshot("v1")
    assert not (results / subdir).exists()
    swept = set(keep.gc(grace_s=0).swept)
    assert first in swept and v1_tree in swept
    ws.restore("v2", force=True)  # what v2 holds is all still there
    assert (data / "kept.bin").stat().st_size == 200_000
    with pytest.raises(NotFound):
        ws.find_snapshot("v1")


def test_a_snapshot_needs_resources(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="no resources"):
        ws.snapshot()


def test_two_processes_snapshotting_at_once_keep_one_history(ws: Workspace) -> None:
    import subprocess
    import sys

    data = ws.add_resource("data", "source-data", "data").path
    for n in range(50):
        (data / f"f{n}").write_text(str(n))
    script = (
        "import sys; from datakeep.workspaces import Workspace\n"
        "with Workspace.open(sys.argv[1]) as ws: print(ws.snapshot(sys.argv[2]))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(ws.root), tag], stdout=subprocess.PIPE, text=True
        )
        for tag in ("left", "right")
    ]
    hashes = {run.communicate(timeout=120)[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(hashes) == 1  # the same content: one snapshot with both tags
    (only,) = ws.history()
    assert set(only.tags) == {"left", "right"} and only.hash in hashes


def test_async_twins(tmp_path: Path) -> None:
    async def main() -> None:
        async with await AsyncWorkspace.init(tmp_path / "w") as ws:
            data = await ws.add_resource("data", "source-data", "data")
            (data.path / "a").write_text("a")
            assert "data" in await ws.status()
            first = await ws.snapshot("v1", metrics={"m": 1})
            (data.path / "a").write_text("b")
            async with ws.step("touch", inputs=["data"], outputs=["data/a"]):
                pass
            await ws.snapshot("v2")
            await ws.restore("v1")
            assert (data.path / "a").read_text() == "a"
            assert (await ws.find_snapshot("v1")).hash == first
            assert [s.number for s in await ws.history()] == [2, 1]
            assert (await ws.diff("v1", "v2"))["data"].changed == ["a"]
            assert await ws.get_results("v1") == {"m": 1}

    asyncio.run(main())
