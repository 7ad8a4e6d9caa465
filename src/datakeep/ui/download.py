"""Downloads: a content, or a file of a tree, streamed verified. The whole blob is
checked before the first byte is sent (:meth:`Keep.stream` with ``verify_first``), so a
damaged one gives an error page, never wrong bytes; a mirror's good copy is served when
the primary's is not."""

from __future__ import annotations

import itertools
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import NotFound
from .pages import Served
from .preview import IMAGE_TYPES
from .trees import check_url_path, find_entry

__all__ = ["download"]


def _disposition(filename: str, inline: bool) -> str:
    kind = "inline" if inline else "attachment"
    ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename) or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download(served: Served, request: Request) -> Response:
    keep = served.keep
    path = check_url_path(str(request.path_params.get("path", "")))
    info = keep.info(keep.store.resolve(str(request.path_params["name"])))
    digest, size, filename = info.digest, info.size, info.digest.partition(":")[2]
    if path:
        if info.kind != "tree":
            raise NotFound(f"{info.digest} is a blob: it has no {path}")
        entry = find_entry(served.trees, info.digest, path)
        if entry is None or entry.digest is None:
            raise NotFound(f"no file {path} in tree {info.digest}")
        digest, size, filename = entry.digest, entry.size, path.rpartition("/")[2]
    dot = filename.rfind(".")
    image_type = IMAGE_TYPES.get(filename[dot:].lower()) if dot >= 0 else None
    inline = request.query_params.get("inline") == "1" and image_type is not None
    chunks = keep.stream(digest)
    first = next(chunks, b"")  # the whole blob is verified here, before any header is sent
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type=image_type if inline and image_type else "application/octet-stream",
        headers={
            "Content-Disposition": _disposition(filename, inline),
            "Content-Length": str(size),
            "X-Datakeep-Digest": digest,
        },
    )
