"""Digests as people type them: a unique prefix of at least 6 hex digits, with or without
the algorithm; an ambiguous prefix lists its candidates; a malformed digest is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert

from datakeep.errors import InvalidDigest, InvalidInput, NotFound
from datakeep.index import contents
from datakeep.keep import Keep

from .conftest import run_cli


def test_a_unique_prefix_names_its_content(keep: Keep) -> None:
    c = keep.put(b"named by a prefix")
    hexdigest = c.digest.partition(":")[2]
    for name in (hexdigest[:6], hexdigest[:20].upper(), "blake3:" + hexdigest[:8], c.digest):
        assert keep.store.resolve(name) == c.digest
    assert keep.store.resolve(hexdigest) == c.digest  # a whole hex digest, no algorithm


def test_short_wrong_and_ambiguous_prefixes_are_errors(keep: Keep) -> None:
    with pytest.raises(InvalidDigest, match="at least 6"):
        keep.store.resolve("abcde")
    with pytest.raises(InvalidDigest):
        keep.store.resolve("blake3:zz")
    with pytest.raises(NotFound, match="no content starts with"):
        keep.store.resolve("000000")
    twins = ["blake3:abcdef" + "1" * 58, "blake3:abcdef" + "2" * 58]
    with keep.db.write() as conn:
        conn.execute(
            insert(contents),
            [{"digest": t, "size": 1, "kind": "blob", "created_at": 0} for t in twins],
        )
    with pytest.raises(InvalidInput) as caught:
        keep.store.resolve("abcdef")
    assert all(t in str(caught.value) for t in twins) and "names 2 contents" in str(caught.value)
    assert keep.store.resolve("abcdef2") == twins[1]
    # another algorithm's digest is an alias, looked up as it is
    assert keep.store.resolve("sha256:" + "0" * 64) == "sha256:" + "0" * 64


def test_the_command_line_takes_prefixes(tmp_path: Path) -> None:
    run_cli("init", cwd=tmp_path)
    (tmp_path / "f").write_bytes(b"short names")
    digest = run_cli("put", "f", cwd=tmp_path).stdout.split()[0].decode()
    short = digest.partition(":")[2][:8]
    assert run_cli("cat", short, cwd=tmp_path).stdout == b"short names"
    run_cli("tag", short, "stage=raw", cwd=tmp_path)
    assert b"stage=raw" in run_cli("info", short, cwd=tmp_path).stdout
    assert run_cli("verify", short, cwd=tmp_path).stdout.startswith(b"ok: 1")
    run_cli("get", short, "out.bin", cwd=tmp_path)
    assert (tmp_path / "out.bin").read_bytes() == b"short names"
    bad = run_cli("ls", "--after", "blake3:zz", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and b"datakeep: error:" in bad.stderr and bad.stdout == b""
    tiny = run_cli("cat", "abc", cwd=tmp_path, check=False)
    assert tiny.returncode == 1 and b"at least 6 hex digits" in tiny.stderr
