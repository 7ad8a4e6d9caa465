"""The datakeep.pack@v1 layout: built, read back, and refused when malformed."""

from __future__ import annotations

import pytest

from datakeep.content.packs import TRAILER_SIZE, build_pack, read_table, table_length
from datakeep.digest import hash_bytes
from datakeep.errors import IntegrityError


def test_a_pack_reads_back_and_names_itself() -> None:
    blobs = [(hash_bytes(d), d) for d in (b"one", b"", b"three" * 1000)]
    key, pack, entries = build_pack(blobs)
    assert key == f"packs/{hash_bytes(pack).partition(':')[2]}.pack"
    assert pack.startswith(b"datakeep.pack@v1\n")
    length = table_length(pack[-TRAILER_SIZE:])
    assert read_table(len(pack), pack[-TRAILER_SIZE - length :]) == entries
    for entry, (digest, data) in zip(entries, blobs, strict=True):
        assert entry.digest == digest
        assert pack[entry.offset : entry.offset + entry.length] == data
    assert build_pack(blobs)[0] == key  # the same blobs, the same pack


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: p[:-1],  # truncated trailer
        lambda p: p[:-8] + b"NOTAPACK",  # wrong magic
        lambda p: p.replace(b" 17 3\n", b" 17 99999\n"),  # an entry past the body
        lambda p: p.replace(b"blake3:", b"blake9:", 1),  # an unknown algorithm
    ],
)
def test_malformed_packs_are_refused(spoil: object) -> None:
    _, pack, _ = build_pack([(hash_bytes(b"one"), b"one")])
    bad = spoil(pack)  # type: ignore[operator]
    with pytest.raises(IntegrityError):
        length = table_length(bad[-TRAILER_SIZE:])
        read_table(len(bad), bad[-TRAILER_SIZE - length :])
