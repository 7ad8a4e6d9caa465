"""Workspaces: resources with roles, snapshots that restore the bytes, results kept per
snapshot, lineage of pipeline steps, and push / pull / clone.

    from datakeep.workspaces import Workspace
    ws = Workspace.init(".")
    ws.add_resource("data", "source-data", "data")
    ws.add_resource("results", "results", "results")
    with ws.lineage.step("train", {"lr": 0.1}, inputs=["data"]) as step:
        ...                                   # write results/metrics.json
        step.add_output("results")
    ws.snapshot("v1", message="baseline", metrics={"accuracy": 0.91})
    ws.restore("v1")
"""

from .aio import AsyncWorkspace
from .errors import AmbiguousSnapshot, LineageConsistencyError, TagInUse, UncommittedChanges
from .lineage import Lineage, Step
from .manifest import Manifest
from .model import ROLES, Changes, Resource, Snapshot, SourceChanges
from .workspace import Workspace

__all__ = [
    "ROLES",
    "AmbiguousSnapshot",
    "AsyncWorkspace",
    "Changes",
    "Lineage",
    "LineageConsistencyError",
    "Manifest",
    "Resource",
    "Snapshot",
    "SourceChanges",
    "Step",
    "TagInUse",
    "UncommittedChanges",
    "Workspace",
]
