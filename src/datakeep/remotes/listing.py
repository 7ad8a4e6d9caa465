"""What a remote holds, found by listing it rather than from the inventory: its objects
under their usual keys, and the blobs its packs list in their own tables."""

from __future__ import annotations

from collections.abc import Iterator

from ..backends import Backend
from ..content import ContentStore, digest_named_by
from ..content.packs import TRAILER_SIZE, PackEntry, is_pack_key, read_table, table_length
from ..errors import IntegrityError

__all__ = ["listed", "pack_tables"]


def pack_tables(source: Backend, unreadable: list[str]) -> Iterator[tuple[str, PackEntry]]:
    """(pack key, entry) of every blob the remote's packs hold, by their own tables; a
    pack whose table cannot be read is noted in ``unreadable`` (the others still serve)."""
    for info in source.list("packs/"):
        try:
            trailer = source.read(info.key, info.size - TRAILER_SIZE, info.size)
            tail_start = info.size - TRAILER_SIZE - table_length(trailer)
            table = read_table(info.size, source.read(info.key, tail_start, info.size))
        except IntegrityError as exc:
            unreadable.append(f"{info.key}: {exc}")
            continue
        for entry in table:
            yield info.key, entry


def listed(store: ContentStore, source: Backend) -> list[str]:
    """Every content the remote holds in this keep's algorithm, found by listing it (its
    objects under their usual keys and its packs' tables): what a keep that never pushed
    there can pull."""
    found = {digest_named_by(info.key) for info in source.list("") if not is_pack_key(info.key)}
    found.update(entry.digest for _, entry in pack_tables(source, []))
    prefix = store.algorithm + ":"
    return sorted(d for d in found if d is not None and d.startswith(prefix))
