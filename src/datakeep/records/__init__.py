"""Record directories: self-describing experiment records kept in a keep, with relations,
a catalog rebuilt from the stored directories, and mirrors.

    from datakeep.records import RecordStore
    records = RecordStore.open(".")
    run = records.create("train", {"lr": 0.01, "model": {"depth": 4}})
    records.save_file(run, "metrics.jsonl", {"step": 1, "loss": 0.9})
    records.commit(run)                       # a verified tree in the keep, pushed to mirrors
    records.find(kind="train", config={"model.depth": ("gte", 4)})
"""

from .aio import AsyncRecordStore
from .errors import IndexCollision, UnsafePath
from .find import RecordPage
from .identity import canonical_json, identity_of
from .model import RecordInfo
from .store import RecordStore

__all__ = [
    "AsyncRecordStore",
    "IndexCollision",
    "RecordInfo",
    "RecordPage",
    "RecordStore",
    "UnsafePath",
    "canonical_json",
    "identity_of",
]
