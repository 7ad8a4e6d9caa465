"""Where a keep is and what its ``keep.json`` says, without loading the index library.

Layout of the embedded default::

    .datakeep/
        keep.json       format, hash algorithm, where the index and the blobs live
        index.sqlite    the index (WAL mode)
        objects/        blobs of the local backend
        cache/          per-machine caches (the stat cache)

Every location in ``keep.json`` is relative to ``.datakeep/`` unless it is a URL, so a
keep directory can be moved or copied and still opens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import InvalidInput, NotFound

__all__ = [
    "CONFIG_FILE",
    "KEEP_DIR",
    "KEEP_FORMAT",
    "find_keep_dir",
    "index_url",
    "read_config",
    "stat_cache_path",
]

KEEP_DIR = ".datakeep"
CONFIG_FILE = "keep.json"
KEEP_FORMAT = "datakeep.keep@v1"


def find_keep_dir(start: str | os.PathLike[str] = ".") -> Path:
    """The ``.datakeep`` directory for ``start``: ``$DATAKEEP_DIR``, else searched upward."""
    override = os.environ.get("DATAKEEP_DIR")
    if override:
        candidate = Path(override)
        for keep_dir in (candidate, candidate / KEEP_DIR):
            if (keep_dir / CONFIG_FILE).is_file():
                return keep_dir.resolve()
        raise NotFound(f"DATAKEEP_DIR={override} holds no keep (run 'datakeep init')")
    here = Path(start).resolve()
    for directory in (here, *here.parents):
        if (directory / KEEP_DIR / CONFIG_FILE).is_file():
            return directory / KEEP_DIR
    raise NotFound(f"no keep in {here} or any parent directory (run 'datakeep init')")


def read_config(keep_dir: Path) -> dict[str, Any]:
    """The parsed ``keep.json`` of ``keep_dir``, checked to be a keep's."""
    try:
        config = json.loads((keep_dir / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise NotFound(f"no keep at {keep_dir}") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"unreadable {keep_dir / CONFIG_FILE}: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != KEEP_FORMAT:
        raise InvalidInput(f"{keep_dir / CONFIG_FILE} is not a {KEEP_FORMAT} file")
    return config


def index_url(keep_dir: Path, index: str) -> str:
    """The database URL of the ``index`` entry: a URL as it is, else a SQLite file."""
    if "://" in index:
        return index
    return f"sqlite:///{keep_dir / index}"


def stat_cache_path(keep_dir: Path) -> Path:
    return keep_dir / "cache" / "stat.sqlite"
