"""Maintenance of a keep: fsck, gc and the roots gc keeps alive."""

from .fsck import Dangling, FsckReport, fsck
from .gc import DEFAULT_GRACE_S, GcReport, collect_garbage, orphan_blobs
from .roots import RootProvider, register_roots, root_providers

__all__ = [
    "DEFAULT_GRACE_S",
    "Dangling",
    "FsckReport",
    "GcReport",
    "RootProvider",
    "collect_garbage",
    "fsck",
    "orphan_blobs",
    "register_roots",
    "root_providers",
]
