"""Trees: directories stored as canonical manifests that are content themselves (Merkle).

:mod:`.format` is the manifest format, :mod:`.put` and :mod:`.export` store and restore a
directory, :mod:`.scan` reads one, :mod:`.statcache` remembers which files are unchanged,
and :mod:`.unchanged` answers the put of an unchanged directory without the index library.

Names are imported on first use, so that the command line's fast path (:mod:`.unchanged`)
loads none of SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import export_tree
    from .format import TREE_FORMAT, TreeEntry, decode_tree, encode_tree, tree_members
    from .put import put_tree

__all__ = [
    "TREE_FORMAT",
    "TreeEntry",
    "decode_tree",
    "encode_tree",
    "export_tree",
    "put_tree",
    "tree_members",
]

_LAZY = {
    "TREE_FORMAT": "format",
    "TreeEntry": "format",
    "decode_tree": "format",
    "encode_tree": "format",
    "export_tree": "export",
    "put_tree": "put",
    "tree_members": "format",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
