"""A keep whose durable home is S3 (the real endpoint), end to end, on both indexes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import datakeep
from datakeep.backends._s3 import S3Backend
from datakeep.content import fanout_key
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


def test_a_tag_routes_content_to_another_bucket(
    tmp_path: Path,
    index_url: str | None,
    s3: S3Endpoint,  # noqa: F811
) -> None:
    main, models = s3.new_bucket(), s3.new_bucket()
    args = [
        *("init", *init_args(index_url), "--blobs", f"s3://{main}/keep", "--endpoint", s3.url),
        *("--route", f"model=s3://{models}/weights", "--route-by", "kind"),
    ]
    run_cli(*args, cwd=tmp_path)
    (tmp_path / "w.bin").write_bytes(b"weights")
    (tmp_path / "r.csv").write_bytes(b"raw rows")
    run_cli("put", "w.bin", "--tag", "kind=model", cwd=tmp_path)
    run_cli("put", "r.csv", "--tag", "kind=raw", cwd=tmp_path)

    with datakeep.open(tmp_path) as keep:
        weights, rows = (keep.find(tags={"kind": k}).items[0].digest for k in ("model", "raw"))
        assert keep.store.key_of(weights).startswith("model/blake3/")
        assert keep.store.key_of(rows).startswith("blake3/")
        seen = S3Backend(models, prefix="weights", endpoint=s3.url, region="us-east-1")
        assert [b.key for b in seen.list()] == [keep.store.key_of(weights).removeprefix("model/")]
        assert keep.get(weights) == b"weights" and keep.fsck().ok

        # an orphan in the routed bucket is found and, re-hashed, adopted by fsck
        orphan = keep.put(b"lost row", tags={"kind": "model"})
        with keep.db.write("forgetting a row") as conn:
            from datakeep.index.schema import contents, placements, tags

            for table in (tags, placements, contents):
                conn.execute(table.delete().where(table.c.digest == orphan.digest))
        assert [k for k, _ in keep.fsck().orphans] == [f"model/{fanout_key(orphan.digest, {})}"]
        assert keep.fsck(repair_index=True).ok
        assert keep.get(orphan.digest) == b"lost row"

    # a Python router may choose too; the index keeps every key, so reads never need it
    with datakeep.open(tmp_path, router=lambda d, t: f"model/by-hand/{fanout_key(d, t)}") as keep:
        c = keep.put(b"by hand")
        assert keep.store.key_of(c.digest).startswith("model/by-hand/")
    with datakeep.open(tmp_path) as keep:
        assert keep.get(c.digest) == b"by hand" and keep.get(weights) == b"weights"


def test_routes_need_s3_blobs_and_a_tag_needs_routes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="s3:// blobs only"):
        datakeep.init(tmp_path / "a", routes={"m": "s3://b/p"})
    with pytest.raises(InvalidInput, match="needs routes"):
        datakeep.init(tmp_path / "b", blobs="s3://b/p", route_by="kind")
    bad = run_cli("init", "c", "--blobs", "s3://b/p", "--route", "nope", cwd=tmp_path, check=False)
    assert bad.returncode != 0 and b"is not KEY=VALUE" in bad.stderr
    for name in ("a", "b", "c"):
        assert not (tmp_path / name / ".datakeep" / "keep.json").exists()
