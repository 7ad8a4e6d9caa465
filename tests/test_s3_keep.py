"""A keep whose durable home is S3 (the real endpoint), end to end, on both indexes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import datakeep
from datakeep.errors import IntegrityError, InvalidInput, NotFound
from datakeep.keep import Keep

from .conftest import init_args, run_cli
from .s3server import S3Endpoint, s3  # noqa: F401  (the session fixture)


@pytest.fixture
def s3_keep(tmp_path: Path, index_url: str | None, s3: S3Endpoint) -> Keep:  # noqa: F811
    bucket = s3.new_bucket()
    return datakeep.init(
        tmp_path / "project", index=index_url, blobs=f"s3://{bucket}/team/keep", endpoint=s3.url
    )


def _overwrite(keep: Keep, digest: str, data: bytes) -> None:
    """Change an object behind datakeep's back (S3 lets the owner overwrite)."""
    import obstore

    backend = keep.store.backend
    obstore.put(backend._store, keep.store.key_of(digest), data)  # type: ignore[attr-defined]


def test_put_get_tree_export_verify_on_s3(s3_keep: Keep, tmp_path: Path) -> None:
    with s3_keep as keep:
        assert json.loads((keep.path / "keep.json").read_text())["blobs"]["backend"] == (
            "datakeep.s3@v1"
        )
        c = keep.put(b"in the bucket", tags={"where": "s3"})
        assert keep.get(c.digest) == b"in the bucket"
        big = bytes(range(256)) * 50_000  # 12.8 MB: streamed through a staging object
        s = keep.put_stream(iter([big[i : i + 1_000_000] for i in range(0, len(big), 1_000_000)]))
        assert b"".join(keep.stream(s.digest)) == big
        empty = keep.put(b"")
        assert empty.size == 0 and keep.get(empty.digest) == b""
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "sub" / "a.txt").write_text("alpha")
        (data / "b.bin").write_bytes(big[:100_000])
        tree = keep.put_tree(data, tags={"stage": "raw"})
        keep.export(tree.digest, tmp_path / "out")
        assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "alpha"
        assert (tmp_path / "out" / "b.bin").read_bytes() == big[:100_000]
        assert keep.verify_many().ok and keep.fsck().ok
        # untagged blobs go; the tagged blob and the tagged tree with its files stay
        assert sorted(keep.gc(grace_s=0).swept) == sorted([s.digest, empty.digest])
        assert keep.get(c.digest) == b"in the bucket" and keep.fsck().ok


def test_a_corrupted_object_is_caught_and_repaired(s3_keep: Keep) -> None:
    with s3_keep as keep:
        c = keep.put(b"the original bytes", tags={"keep": "yes"})
        _overwrite(keep, c.digest, b"the altered bytes!")
        with pytest.raises(IntegrityError):
            keep.get(c.digest)
        report = keep.fsck(repair_index=True)
        assert [p.digest for p in report.corrupted] == [c.digest]
        with pytest.raises(NotFound):
            keep.get(c.digest)
        assert keep.put(b"the original bytes").digest == c.digest  # stored again
        assert keep.get(c.digest) == b"the original bytes" and keep.fsck().ok


def test_gc_sweeps_objects_on_s3(s3_keep: Keep) -> None:
    with s3_keep as keep:
        kept = keep.put(b"tagged", tags={"k": "v"})
        loose = keep.put(b"loose")
        keep.store.backend.create("blake3/00/orphan", b"leftover")
        report = keep.gc(grace_s=0)
        assert report.swept == [loose.digest] and report.orphans == ["blake3/00/orphan"]
        assert [b.key for b in keep.store.backend.list()] == [keep.store.key_of(kept.digest)]


def test_init_on_s3_from_the_command_line(
    tmp_path: Path,
    index_url: str | None,
    s3: S3Endpoint,  # noqa: F811
) -> None:
    bucket = s3.new_bucket()
    args = ["init", *init_args(index_url), "--blobs", f"s3://{bucket}/p", "--endpoint", s3.url]
    run_cli(*args, cwd=tmp_path)
    (tmp_path / "f").write_bytes(b"via the CLI")
    digest = run_cli("put", "f", cwd=tmp_path).stdout.split()[0].decode()
    assert run_cli("cat", digest, cwd=tmp_path).stdout == b"via the CLI"
    with pytest.raises(InvalidInput):
        datakeep.init(tmp_path / "x", blobs="s3:///no-bucket")
    with pytest.raises(InvalidInput):
        datakeep.init(tmp_path / "y", blobs="gs://elsewhere")
