"""``datakeep.pack@v1``: many small blobs in one remote object (``docs/pack-format.md``).

A pack is the blobs back to back, then a table (digest, offset, length per line), then a
16-byte trailer giving the table's length. It is named by its own BLAKE3, so packs are
content-addressed and written create-only like any blob.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .digest import hash_bytes, parse_digest
from .errors import IntegrityError

__all__ = [
    "PACKABLE",
    "PACK_FORMAT",
    "PACK_LIMIT",
    "TRAILER_SIZE",
    "PackEntry",
    "build_pack",
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
    body = bytearray(_HEADER)
    entries = []
    for digest, data in blobs:
        entries.append(PackEntry(digest, len(body), len(data)))
        body += data
    table = "".join(f"{e.digest} {e.offset} {e.length}\n" for e in entries).encode()
    body += table
    body += _TRAILER.pack(len(table), _MAGIC)
    pack = bytes(body)
    return f"packs/{hash_bytes(pack).partition(':')[2]}.pack", pack, entries


def pack_pointer(key: str, entry: PackEntry) -> dict[str, object]:
    """The placement pointer of a packed blob."""
    return {"pack": key, "offset": entry.offset, "length": entry.length}


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
