"""Lineage of pipeline steps in a workspace, on both indexes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datakeep.digest import hash_bytes
from datakeep.errors import InvalidInput
from datakeep.keep import Keep
from datakeep.workspaces import LineageConsistencyError, Workspace


@pytest.fixture
def ws(keep: Keep) -> Iterator[Workspace]:
    with Workspace.init(keep.path.parent, "lab", keep=keep) as workspace:
        for name, role in (
            ("raw", "source-data"),
            ("features", "intermediate-data"),
            ("model", "intermediate-data"),
            ("code", "code"),
            ("results", "results"),
        ):
            workspace.add_resource(name, role, name)
        (workspace.root / "raw/data.csv").write_text("x\n1\n")
        (workspace.root / "code/prep.py").write_text("prep")
        (workspace.root / "code/train.py").write_text("train")
        yield workspace


def _write(ws: Workspace, path: str, text: str) -> None:
    target = ws.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_steps_record_inputs_code_and_outputs(ws: Workspace) -> None:
    ws.snapshot("base")
    raw_version = ws.find_snapshot("base").trees["raw"]
    with ws.lineage.step("prep", {"scale": 2}, inputs=["raw"], code=["code/prep.py"]) as step:
        _write(ws, "features/f.csv", "f")
        step.add_output("features")
    entry = ws.lineage.entry("features/f.csv")  # the entry of the output holding it
    assert entry is not None and entry["step"] == "prep" and entry["params"] == {"scale": 2}
    assert entry["inputs"] == [{"ref": "raw", "version": raw_version}]
    assert entry["outputs"][0]["version"].startswith("pending:")
    # the next snapshot turns the placeholder into the digest it stores
    ws.snapshot("after-prep")
    stored = ws.lineage.entry("features")
    assert stored is not None
    assert stored["outputs"][0]["version"] == ws.find_snapshot("after-prep").trees["features"]
    assert ws.manifest("after-prep").lineage["features"] == stored
    # a path inside a resource has a version of its own: a file's digest
    assert ws.lineage.version_of("raw/data.csv") == hash_bytes(b"x\n1\n")
    (ws.root / "raw/data.csv").write_text("x\n2\n")
    assert ws.lineage.version_of("raw/data.csv").startswith("pending:")
    assert ws.lineage.entry("model") is None


def test_derived_from_walks_upstream_with_warnings(ws: Workspace) -> None:
    with ws.lineage.step("prep", inputs=["raw"], code=["code/prep.py"], outputs=["features"]):
        _write(ws, "features/f.csv", "f")
    with ws.lineage.step("train", inputs=["features", "model/init"], outputs=["model/weights"]):
        _write(ws, "model/weights/w.bin", "w")
    steps, warnings = ws.lineage.derived_from("model/weights")
    assert [s["step"] for s in steps] == ["train", "prep"]
    assert warnings == ["model/init: no lineage recorded for derived data"]
    assert [e["step"] for e in ws.lineage.entries()] == ["prep", "train"]


def test_reading_data_changed_after_a_downstream_step_read_it_is_refused(ws: Workspace) -> None:
    with ws.lineage.step("prep", inputs=["raw"], outputs=["features"]):
        _write(ws, "features/f.csv", "v1")
    with ws.lineage.step("train", inputs=["features"], outputs=["model"]):
        _write(ws, "model/m", "m1")
    # features made again: the model was derived from the old features
    with ws.lineage.step("prep", inputs=["raw"], outputs=["features"]):
        _write(ws, "features/f.csv", "v2")
    evaluate = ws.lineage.step("evaluate", inputs=["model", "features"], outputs=["results"])
    with pytest.raises(LineageConsistencyError, match="features"), evaluate:
        pass
    # re-running the step in between makes it consistent again
    with ws.lineage.step("train", inputs=["features"], outputs=["model"]):
        _write(ws, "model/m", "m2")
    with ws.lineage.step("evaluate", inputs=["model", "features"], outputs=["results/r"]):
        _write(ws, "results/r", "ok")


def test_overlapping_outputs_and_unknown_refs_are_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="overlaps"), ws.lineage.step("prep") as step:
        step.add_output("features")
        step.add_output("features/sub")
    with pytest.raises(InvalidInput, match="no resource"), ws.lineage.step("p", inputs=["x/y"]):
        pass
    with pytest.raises(InvalidInput), ws.lineage.step("prep", inputs=["raw/../code"]):
        pass
    assert ws.lineage.entries() == []


def test_an_aborted_step_clears_the_lineage_of_its_outputs(ws: Workspace) -> None:
    with ws.lineage.step("prep", inputs=["raw"], outputs=["features"]):
        _write(ws, "features/f.csv", "v1")
    assert ws.lineage.entry("features") is not None
    prep = ws.lineage.step("prep", inputs=["raw"], outputs=["features"])
    with pytest.raises(RuntimeError), prep:
        _write(ws, "features/f.csv", "half written")
        raise RuntimeError("killed")
    assert ws.lineage.entry("features") is None


def test_a_new_output_replaces_entries_it_overlaps(ws: Workspace) -> None:
    with ws.lineage.step("a", inputs=["raw"], outputs=["features/one"]):
        pass
    with ws.lineage.step("b", inputs=["raw"], outputs=["features"]):
        pass
    assert [e["step"] for e in ws.lineage.entries()] == ["b"]


def test_restore_puts_the_snapshots_lineage_back(ws: Workspace) -> None:
    with ws.lineage.step("prep", {"v": 1}, inputs=["raw"], outputs=["features"]):
        _write(ws, "features/f.csv", "v1")
    ws.snapshot("v1")
    with ws.lineage.step("prep", {"v": 2}, inputs=["raw"], outputs=["features"]):
        _write(ws, "features/f.csv", "v2")
    ws.snapshot("v2")
    ws.restore("v1")
    entry = ws.lineage.entry("features")
    assert entry is not None and entry["params"] == {"v": 1}
    assert (ws.root / "features/f.csv").read_text() == "v1"
    # lineage persists: another process sees it
    with Workspace.open(ws.root) as again:
        found = again.lineage.entry("features")
        assert found is not None and found["params"] == {"v": 1}


def test_lineage_is_part_of_the_snapshot_identity(ws: Workspace, tmp_path: Path) -> None:
    first = ws.snapshot("plain")
    with ws.lineage.step("touch", inputs=["raw"], outputs=["results/x"]):
        pass
    assert ws.snapshot("with-lineage") != first
