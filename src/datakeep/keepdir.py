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
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .digest import check_algorithm
from .errors import AlreadyExists, InvalidInput, InvalidPath, NotFound

__all__ = [
    "CONFIG_FILE",
    "KEEP_DIR",
    "KEEP_FORMAT",
    "check_settings",
    "create_keep_dir",
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


def create_keep_dir(
    path: str | os.PathLike[str],
    algorithm: str,
    index: str | None,
    blobs: str | os.PathLike[str] | None,
    endpoint: str | None,
    routes: Mapping[str, str] | None,
    route_by: str | None,
) -> Path:
    """Create ``path/.datakeep`` with its ``keep.json`` (written once, atomically) and
    return it; see :func:`datakeep.keep.init_keep` for the arguments."""
    # imported here: the readers of keep.json (the command line's fast path) need none of it
    from .backends import S3_NAME, LocalBackend, backend_for_location

    check_algorithm(algorithm)
    if index is not None and "://" not in index:
        raise InvalidInput(f"index must be a database URL (postgresql://host/db), not {index!r}")
    keep_dir = Path(path).resolve() / KEEP_DIR
    if (keep_dir / CONFIG_FILE).exists():
        raise AlreadyExists(f"a keep already exists in {keep_dir}")
    if blobs is None:
        if endpoint is not None:
            raise InvalidInput("an endpoint goes with s3:// locations only")
        blob_config: dict[str, Any] = {"backend": LocalBackend.name, "root": "objects"}
    else:
        name, settings = backend_for_location(str(blobs), endpoint)
        blob_config = {"backend": name, **settings}
    if routes:
        if blob_config["backend"] != S3_NAME:
            raise InvalidInput("routes go with s3:// blobs only")
        blob_config["routes"] = dict(routes)
    if route_by is not None and not routes:
        raise InvalidInput("route_by needs routes to choose from")
    try:
        keep_dir.mkdir(parents=True, exist_ok=True)
        if blob_config["backend"] == LocalBackend.name:
            (keep_dir / blob_config["root"]).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidPath(f"cannot create {exc.filename}: {exc.strerror}") from exc
    config = {
        "format": KEEP_FORMAT,
        "algorithm": algorithm,
        "index": index or "index.sqlite",
        "blobs": blob_config,
    }
    if route_by is not None:
        config["route_by"] = route_by
    _write_config_once(keep_dir / CONFIG_FILE, config)
    return keep_dir


def check_settings(
    keep_dir: Path,
    algorithm: str | None,
    index: str | None,
    blobs: str | os.PathLike[str] | None,
    endpoint: str | None,
    routes: Mapping[str, str] | None,
    route_by: str | None,
) -> None:
    """Refuse (:class:`InvalidInput`) an existing keep whose ``keep.json`` says otherwise
    than a setting given (None: not given, the keep's own stands); the arguments are those
    of :func:`create_keep_dir`."""
    from .backends import backend_for_location

    config = read_config(keep_dir)
    stored_blobs = dict(config["blobs"])
    stored_routes = stored_blobs.pop("routes", None)
    differ: list[str] = []
    if algorithm is not None and check_algorithm(algorithm) != config["algorithm"]:
        differ.append(f"{config['algorithm']} digests, not {algorithm}")
    if index is not None and index != config["index"]:
        differ.append(f"the index {config['index']}, not {index}")
    if blobs is not None:
        name, settings = backend_for_location(str(blobs), endpoint)
        if {"backend": name, **settings} != stored_blobs:
            differ.append(f"its blobs in {stored_blobs}, not {blobs}")
    elif endpoint is not None and endpoint != stored_blobs.get("endpoint"):
        differ.append(f"the endpoint {stored_blobs.get('endpoint')}, not {endpoint}")
    if routes is not None and dict(routes) != (stored_routes or {}):
        differ.append(f"the routes {stored_routes or {}}, not {dict(routes)}")
    if route_by is not None and route_by != config.get("route_by"):
        differ.append(f"route_by {config.get('route_by')}, not {route_by}")
    if differ:
        raise InvalidInput(f"the keep in {keep_dir} has " + "; ".join(differ))


def _write_config_once(path: Path, config: dict[str, Any]) -> None:
    """Create ``keep.json`` atomically and only once, even with concurrent ``init``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise AlreadyExists(f"a keep already exists in {path.parent}") from None
    finally:
        tmp.unlink()
