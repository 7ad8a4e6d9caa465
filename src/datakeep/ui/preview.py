"""Previews of a file: text up to a size, images, the first rows of CSV and Parquet as a
table. Every preview reads the whole blob verified (:meth:`Keep.get`) before showing a
byte of it, so only files up to :data:`PREVIEW_MAX` are previewed; larger ones are
offered for download, which verifies as it streams."""

from __future__ import annotations

import csv
import importlib
import io
from typing import Any

from ..keep import Keep

__all__ = ["IMAGE_TYPES", "PREVIEW_MAX", "ROWS", "TEXT_SHOWN", "preview"]

PREVIEW_MAX = 16 << 20
TEXT_SHOWN = 64 << 10
ROWS = 50
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
"""Raster images shown inline. SVG is not among them: it may hold scripts, so it is
previewed as text."""


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def preview(keep: Keep, digest: str, size: int, name: str) -> dict[str, Any]:
    """How to show the file ``name`` (content ``digest``): ``kind`` is ``image``, ``table``,
    ``text``, ``binary`` or ``too-large``, with what the page shows for it."""
    suffix = _suffix(name)
    if size > PREVIEW_MAX:
        return {"kind": "too-large", "limit": PREVIEW_MAX}
    if suffix in IMAGE_TYPES:
        keep.get(digest)  # a damaged image gives the error page, not a broken icon
        return {"kind": "image", "type": IMAGE_TYPES[suffix]}
    data = keep.get(digest)
    if suffix in (".csv", ".tsv"):
        return _delimited(data, "\t" if suffix == ".tsv" else ",")
    if suffix == ".parquet":
        return _parquet(data)
    return _text(data)


def _text(data: bytes) -> dict[str, Any]:
    shown = data[:TEXT_SHOWN]
    if b"\x00" in shown:
        return {"kind": "binary"}
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(shown) - 3:  # not just a character cut at the cap
            return {"kind": "binary"}
        text = shown[: exc.start].decode("utf-8")
    return {"kind": "text", "text": text, "truncated": len(data) > TEXT_SHOWN}


def _delimited(data: bytes, delimiter: str) -> dict[str, Any]:
    lines = data[:TEXT_SHOWN].decode("utf-8", errors="replace").splitlines()
    rows = list(csv.reader(lines[: ROWS + 1], delimiter=delimiter))
    if not rows:
        return {"kind": "text", "text": "", "truncated": False}
    return {"kind": "table", "columns": rows[0], "rows": rows[1:], "more": len(lines) > ROWS + 1}


def _parquet(data: bytes) -> dict[str, Any]:
    """The first rows through pyarrow, if it is installed (it is not a dependency of the
    web view); without it, a note and the download."""
    try:
        # imported by name: pyarrow is optional and ships no type information
        pq: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        return {"kind": "binary", "note": "install pyarrow to preview Parquet files"}
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        batch = next(parquet.iter_batches(batch_size=ROWS), None)
    except Exception as exc:  # pyarrow's own errors: the file is not readable Parquet
        return {"kind": "binary", "note": f"not readable as Parquet: {exc}"}
    columns = list(parquet.schema_arrow.names)
    rows = [] if batch is None else [[str(v) for v in row.values()] for row in batch.to_pylist()]
    return {
        "kind": "table",
        "columns": columns,
        "rows": rows,
        "more": parquet.metadata.num_rows > len(rows),
    }
