"""Trees: a directory stored as a canonical manifest that is itself content (Merkle).

Format ``datakeep.tree@v1`` (UTF-8 text; documented in ``docs/tree-format.md``)::

    datakeep.tree@v1
    <kind> <mode, octal> <size> <digest or -> <path>

one line per entry, sorted by path, where kind is ``f`` (regular file), ``l`` (symbolic
link; its content is the link target) or ``d`` (empty directory). Paths are relative,
``/``-separated, with ``\\``, newline and carriage return escaped as ``\\\\``, ``\\n`` and
``\\r``. The same directory always gives the same bytes, hence the same digest.

How the files are kept is not part of the manifest: a put stores a tree's small files in
packs (:mod:`datakeep.content.packs`) and the others as blobs of their own, and an export reads
each pack once for all the files it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..digest import ALGORITHMS, parse_digest
from ..errors import IntegrityError, InvalidPath

__all__ = [
    "TREE_FORMAT",
    "TreeEntry",
    "check_relative_path",
    "decode_tree",
    "encode_tree",
    "tree_members",
]

TREE_FORMAT = "datakeep.tree@v1"
_HEADER = TREE_FORMAT + "\n"


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a tree manifest."""

    path: str
    """Relative ``/``-separated path inside the tree."""
    kind: str
    """``f`` file, ``l`` symbolic link, ``d`` empty directory."""
    mode: int
    """Permission bits (``st_mode & 0o777``)."""
    size: int
    """Bytes of the file or of the link target; 0 for a directory."""
    digest: str | None
    """Content digest; None for a directory."""


def _escape(path: str) -> str:
    if "\\" in path or "\n" in path or "\r" in path:
        return path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return path


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(text[i + 1], "\ufffd"))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def encode_tree(entries: Iterable[TreeEntry]) -> bytes:
    lines = [_HEADER]
    for e in sorted(entries, key=lambda e: e.path):
        lines.append(f"{e.kind} {e.mode:o} {e.size} {e.digest or '-'} {_escape(e.path)}\n")
    return "".join(lines).encode()


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a clean relative path inside a tree, else raise."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in path
    ):
        raise InvalidPath(f"unsafe path in tree: {path!r}")
    return path


# A line as encode_tree writes it for a file or link whose path needs no escaping: parsed
# by one match rather than field by field (a manifest of 10,000 files: 36 ms -> N ms).
# Anything else, valid or not, is read by _parse_line, which says what is wrong.
_PLAIN_LINE = re.compile(r"([fl]) ([0-7]{1,3}) (0|[1-9][0-9]*) ([a-z0-9]+):([0-9a-f]+) ([^\\\0]+)")


def _parse_line(line: str, algorithm: str | None) -> TreeEntry:
    kind, mode_text, size_text, digest_text, raw_path = line.split(" ", 4)
    path = check_relative_path(_unescape(raw_path))
    mode, size = int(mode_text, 8), int(size_text)
    if kind not in ("f", "l", "d") or mode < 0 or mode > 0o777 or size < 0:
        raise ValueError(line)
    digest = None if kind == "d" else str(parse_digest(digest_text))
    if kind == "d" and digest_text != "-":
        raise ValueError(line)
    if algorithm is not None and digest is not None and not digest.startswith(algorithm):
        raise ValueError(line)
    return TreeEntry(path, kind, mode, size, digest)


def _parse_plain(line: str, algorithm: str | None) -> TreeEntry | None:
    """The entry of a plain file or link line, or None to leave it to :func:`_parse_line`."""
    match = _PLAIN_LINE.fullmatch(line)
    if match is None:
        return None
    kind, mode, size, name, hexpart, path = match.groups()
    if (
        ALGORITHMS.get(name) != len(hexpart)
        or (algorithm is not None and name != algorithm)
        or path[0] == "/"
        or path[-1] == "/"
        or "//" in path
        or "/." in "/" + path  # no "." or ".." part (a dot file takes the long way)
    ):
        return None
    return TreeEntry(path, kind, int(mode, 8), int(size), f"{name}:{hexpart}")


def decode_tree(data: bytes, algorithm: str | None = None) -> list[TreeEntry]:
    """Parse and validate a manifest; anything malformed raises :class:`IntegrityError`."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise IntegrityError("tree manifest is not UTF-8") from None
    if not text.startswith(_HEADER):
        raise IntegrityError(f"not a {TREE_FORMAT} manifest")
    entries: list[TreeEntry] = []
    previous = ""
    blocked: set[str] = set()  # files and links: nothing may live beneath them
    for number, line in enumerate(text[len(_HEADER) :].split("\n")[:-1], start=2):
        try:
            entry = _parse_plain(line, algorithm) or _parse_line(line, algorithm)
        except ValueError as exc:  # InvalidPath and InvalidDigest too
            raise IntegrityError(f"tree manifest line {number} is malformed: {exc}") from None
        path = entry.path
        if path <= previous:
            raise IntegrityError(f"tree manifest line {number}: paths not strictly sorted")
        parent = path
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if parent in blocked:
                raise IntegrityError(f"tree manifest: {path!r} lies under a file or link")
        if entry.kind != "d":
            blocked.add(path)
        previous = path
        entries.append(entry)
    if not text.endswith("\n") and len(text) > len(_HEADER):
        raise IntegrityError("tree manifest is truncated")
    return entries


def tree_members(data: bytes, algorithm: str) -> list[str]:
    """The digests a manifest names, without checking its paths: for gc, which reads
    many large trees whose bytes were verified on read and fully validated when stored.
    Anything that does not look like a manifest still raises :class:`IntegrityError`."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise IntegrityError("tree manifest is not UTF-8") from None
    if not text.startswith(_HEADER) or not text.endswith("\n"):
        raise IntegrityError(f"not a {TREE_FORMAT} manifest")
    prefix = algorithm + ":"
    members = []
    for line in text[len(_HEADER) : -1].split("\n") if len(text) > len(_HEADER) else []:
        fields = line.split(" ", 4)
        if len(fields) != 5 or not (fields[3] == "-" or fields[3].startswith(prefix)):
            raise IntegrityError(f"tree manifest line is malformed: {line!r}")
        if fields[3] != "-":
            members.append(fields[3])
    return members
