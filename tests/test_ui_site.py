"""A keep with something of every kind the web view shows, for its tests (no tests here:
:func:`build_keep` is shared by ``test_ui``, ``test_ui_safety`` and ``test_ui_browser``)."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import datakeep
from datakeep.files import FileStore
from datakeep.keep import Keep
from datakeep.records import RecordStore
from datakeep.runs import ExecutionJob, MasterJob, Project, Record, RunStore
from datakeep.workspaces import Workspace

with warnings.catch_warnings():  # this Starlette prefers httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["ODD_NAME", "RECORDS", "SCRIPT", "STATUSES", "TestClient", "build_keep", "png"]

SCRIPT = "<script>alert('x')</script>"
ODD_NAME = "<img src=x onerror=alert(1)>.txt"
RECORDS = 120
STATUSES = ("completed", "failed", "filtered", "duplicate")


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG of grey pixels, made by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def build_keep(root: Path, index: str | None) -> dict[str, Any]:
    """A keep with something of every kind the web view shows; what it holds, by name."""
    import pandas as pd

    made: dict[str, Any] = {}
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "readme.txt").write_text(f"hello from the keep\n{SCRIPT}\n")
    (data / "table.csv").write_text("city,rows\nOslo,3\nLima,5\n")
    (data / "pixel.png").write_bytes(png())
    (data / ODD_NAME).write_text("odd")
    (data / "sub" / "deep.txt").write_text("deep file\n")
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_parquet(data / "frame.parquet")
    with datakeep.init(root, index=index) as keep:
        tree = keep.put_tree(data, tags={"stage": "raw", "note": SCRIPT})
        keep.pin(tree.digest, note="paper")
        made["tree"] = tree.digest
        made["blob"] = keep.put(b"a blob of its own\n" * 4000, tags={"kind": "loose"}).digest
        for i in range(60):  # more than a page of contents
            keep.put(f"item {i}".encode(), tags={"batch": "b"})
        made["file"] = {e: keep.store.resolve(d) for e, d in _tree_files(keep, tree.digest).items()}
        runs = RunStore(keep)
        runs.save_project(Project("qa", "Question answering", description=SCRIPT))
        runs.log_master_job_start(MasterJob("m1", "qa", name="first run", status="running"))
        for job in ("j1", "j2"):
            runs.log_execution_job_start(ExecutionJob(job, "m1", status="running"))
        batch = [
            Record(f"r{i:03d}", f"j{1 + i % 2}", "m1", STATUSES[i % 4]) for i in range(RECORDS)
        ]
        runs.log_records(batch, {"r001": {"question": SCRIPT, "answer": 42}})
        runs.log_master_job_end("m1", "completed_with_errors")
        with Workspace.init(root / "ws", "lab", keep=keep) as ws:
            ws.add_resource("inputs", "source-data", "inputs")
            ws.add_resource("results", "results", "results")
            (ws.root / "inputs" / "train.csv").write_text("x\n1\n")
            ws.snapshot("v1", message="baseline", metrics={"accuracy": 0.5, "rows": 1})
            (ws.root / "inputs" / "train.csv").write_text("x\n1\n2\n")
            (ws.root / "inputs" / "more.csv").write_text("y\n")
            with ws.lineage.step("train", {"lr": 0.1}, inputs=["inputs"]) as step:
                (ws.root / "results" / "metrics.json").write_text('{"accuracy": 0.9}')
                step.add_output("results")
            ws.snapshot("v2", message=f"more data {SCRIPT}", metrics={"accuracy": 0.9, "rows": 2})
        records = RecordStore(keep)
        train = records.create("train", {"lr": 0.01, "model": {"depth": 4}})
        records.save_file(train, "metrics.json", {"loss": 0.5})
        records.commit(train)
        evaluation = records.create("eval", {"split": "test"})
        records.relate("evaluates", evaluation, train)
        made["records"] = {"train": train, "eval": evaluation}
        store = FileStore.create(keep, "results")
        added = store.add_file("S230518h", "Prod0", data / "table.csv")
        made["store_file"] = added
    return made


def _tree_files(keep: Keep, tree: str) -> dict[str, str]:
    from datakeep.trees.format import decode_tree

    return {e.path: e.digest for e in decode_tree(keep.get(tree)) if e.digest}
