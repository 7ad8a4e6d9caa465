"""``datakeep.pack@v1``: many small blobs in one object (``docs/pack-format.md``).

A pack is the blobs back to back, then a table (digest, offset, length per line), then a
16-byte trailer giving the table's length. It is named by its own BLAKE3, so packs are
content-addressed and written create-only like any blob. Remotes receive small blobs in
packs, and a keep stores the small files of a tree in packs of its own.

Inside the content store a packed blob's key is its pack's key and its byte range,
``packs/<hex>.pack#<offset>+<length>`` (:func:`member_key`); ``#`` never occurs in a
backend key, so the two cannot be confused.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..digest import DEFAULT_ALGORITHM, hash_bytes, parse_digest
from ..errors import IntegrityError

__all__ = [
    "PACKABLE",
    "PACK_FORMAT",
    "PACK_LIMIT",
    "TRAILER_SIZE",
    "PackEntry",
    "PackMember",
    "build_pack",
    "is_pack_key",
    "member_key",
    "object_key",
    "pack_digest",
    "pack_member",
    "pack_pointer",
    "read_table",
    "table_length",
]

PACK_FORMAT = "datakeep.pack@v1"
_HEADER = f"{PACK_FORMAT}\n".encode()
_MAGIC = b"DKPACK01"
_TRAILER = struct.Struct(">Q8s")
PACKABLE = 1 << 20
"""Blobs up to this size travel in packs."""
PACK_LIMIT = 16 << 20
"""A pack is closed once its body reaches this size."""


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob lies in a pack."""

    digest: str
    offset: int
    length: int


def build_pack(blobs: Iterable[tuple[str, bytes]]) -> tuple[str, bytes, list[PackEntry]]:
    """(key, bytes, entries) of a pack holding ``blobs`` (digest, data) in that order."""
    parts = [_HEADER]
    entries = []
    offset = len(_HEADER)
    for digest, data in blobs:
        entries.append(PackEntry(digest, offset, len(data)))
        parts.append(data)
        offset += len(data)
    table = "".join(f"{e.digest} {e.offset} {e.length}\n" for e in entries).encode()
    parts += (table, _TRAILER.pack(len(table), _MAGIC))
    pack = b"".join(parts)  # the one copy of the bytes
    return f"packs/{hash_bytes(pack).partition(':')[2]}.pack", pack, entries


def pack_pointer(key: str, entry: PackEntry) -> dict[str, object]:
    """The placement pointer of a packed blob."""
    return {"pack": key, "offset": entry.offset, "length": entry.length}


def pack_digest(key: str) -> str:
    """The digest of the pack named ``key`` (as :func:`build_pack` names packs)."""
    return f"{DEFAULT_ALGORITHM}:" + key.removeprefix("packs/").removesuffix(".pack")


def is_pack_key(key: str) -> bool:
    """Whether a backend key names a pack (as :func:`build_pack` names them)."""
    return key.startswith("packs/") and key.endswith(".pack")


@dataclass(frozen=True, slots=True)
class PackMember:
    """One blob inside a pack: the pack's key and the blob's byte range."""

    pack: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def member_key(pack: str, offset: int, length: int) -> str:
    """The key the content store uses for the blob at ``[offset, offset + length)`` of
    the pack ``pack``."""
    return f"{pack}#{offset}+{length}"


def object_key(key: str) -> str:
    """The backend object holding the bytes of ``key``: its pack for a :func:`member_key`,
    else ``key`` itself."""
    return key.partition("#")[0]


def pack_member(key: str) -> PackMember | None:
    """The pack and range a :func:`member_key` names; None for the key of a whole blob."""
    pack, sep, span = key.partition("#")
    if not sep:
        return None
    offset, _, length = span.partition("+")
    return PackMember(pack, int(offset), int(length))


TRAILER_SIZE = _TRAILER.size


def table_length(trailer: bytes) -> int:
    """The length of a pack's table, from its last :data:`TRAILER_SIZE` bytes."""
    if len(trailer) != _TRAILER.size:
        raise IntegrityError("pack is too short for its trailer")
    length, magic = _TRAILER.unpack(trailer)
    if magic != _MAGIC:
        raise IntegrityError(f"not a {PACK_FORMAT} object (bad trailer)")
    return int(length)


def read_table(pack_size: int, tail: bytes) -> list[PackEntry]:
    """The entries of a pack, from its last bytes (at least the table and trailer)."""
    if len(tail) < _TRAILER.size:
        raise IntegrityError("pack is too short for its trailer")
    table_length, magic = _TRAILER.unpack(tail[-_TRAILER.size :])
    if magic != _MAGIC or table_length > min(len(tail), pack_size) - _TRAILER.size:
        raise IntegrityError(f"not a {PACK_FORMAT} object (bad trailer)")
    table = tail[-_TRAILER.size - table_length : -_TRAILER.size]
    entries = []
    body_end = pack_size - _TRAILER.size - table_length
    try:
        for line in table.decode().splitlines():
            digest, offset, length = line.split(" ")
            entry = PackEntry(str(parse_digest(digest)), int(offset), int(length))
            if entry.offset < len(_HEADER) or entry.offset + entry.length > body_end:
                raise ValueError(line)
            entries.append(entry)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"malformed {PACK_FORMAT} table: {exc}") from None
    return entries
