"""A workspace resource that is an S3 prefix, on both indexes, against the S3 test endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from datakeep.errors import InvalidInput, InvalidPath
from datakeep.keep import Keep
from datakeep.workspaces import Workspace
from datakeep.workspaces.schema import s3_objects

from .s3server import S3Endpoint


@pytest.fixture
def client(s3: S3Endpoint) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def ws(keep: Keep) -> Iterator[Workspace]:
    with Workspace.init(keep.path.parent, "lab", keep=keep) as workspace:
        yield workspace


def _objects(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {
        o["Key"][len(prefix) + 1 :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def test_an_s3_prefix_is_snapshotted_and_restored(
    ws: Workspace, s3: S3Endpoint, client: Any
) -> None:
    bucket = s3.new_bucket()
    for key, body in {"a.csv": b"1,2\n", "deep/b.bin": bytes(300_000), "c d.txt": b"c"}.items():
        client.put_object(Bucket=bucket, Key=f"images/{key}", Body=body)
    client.put_object(Bucket=bucket, Key="other/x", Body=b"not in the resource")
    ws.add_resource("images", "source-data", f"s3://{bucket}/images", endpoint=s3.url)
    assert ws.status()["images"].added == ["a.csv", "c d.txt", "deep/b.bin"]
    ws.snapshot("v1")
    first = _objects(client, bucket, "images")
    assert ws.status() == {}
    client.put_object(Bucket=bucket, Key="images/a.csv", Body=b"changed")
    client.put_object(Bucket=bucket, Key="images/new.txt", Body=b"new")
    client.delete_object(Bucket=bucket, Key="images/c d.txt")
    changes = ws.status()["images"]
    assert (changes.added, changes.changed, changes.removed) == (
        ["new.txt"],
        ["a.csv"],
        ["c d.txt"],
    )
    with pytest.raises(InvalidInput, match="not snapshotted"):
        ws.restore("v1")
    ws.snapshot("v2")
    second = _objects(client, bucket, "images")
    ws.restore("v1")
    assert _objects(client, bucket, "images") == first
    assert client.get_object(Bucket=bucket, Key="other/x")["Body"].read() == b"not in the resource"
    assert ws.status() == {}
    ws.restore("v2")
    assert _objects(client, bucket, "images") == second
    assert ws.diff("v1", "v2")["images"].changed == ["a.csv"]


def test_unchanged_objects_are_not_read_again(
    ws: Workspace, s3: S3Endpoint, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datakeep.workspaces import s3prefix

    bucket = s3.new_bucket()
    for n in range(5):
        client.put_object(Bucket=bucket, Key=f"data/{n}", Body=str(n).encode())
    ws.add_resource("data", "source-data", f"s3://{bucket}/data", endpoint=s3.url)
    ws.snapshot("v1")
    with ws.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(s3_objects)).scalar() == 5
    read: list[str] = []
    original = s3prefix.S3Prefix._chunks

    def counting(self: s3prefix.S3Prefix, key: str) -> Iterator[bytes]:
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(s3prefix.S3Prefix, "_chunks", counting)
    assert ws.status() == {}
    client.put_object(Bucket=bucket, Key="data/3", Body=b"three")
    assert ws.status()["data"].changed == ["3"]
    assert read == ["3"]


def test_s3_resources_are_validated(ws: Workspace, s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    with pytest.raises(InvalidInput, match="prefix"):
        ws.add_resource("whole", "source-data", f"s3://{bucket}", endpoint=s3.url)
    with pytest.raises(InvalidInput, match="results"):
        ws.add_resource("out", "results", f"s3://{bucket}/out", endpoint=s3.url)
    with pytest.raises(InvalidInput, match="endpoint"):
        ws.add_resource("local", "code", "code", endpoint=s3.url)
    ws.add_resource("data", "source-data", f"s3://{bucket}/data", endpoint=s3.url)
    with pytest.raises(InvalidPath, match="overlaps"):
        ws.add_resource("inner", "source-data", f"s3://{bucket}/data/inner", endpoint=s3.url)
    assert [r.name for r in ws.resources()] == ["data"]


def test_an_s3_resource_travels_with_its_endpoint(
    ws: Workspace, s3: S3Endpoint, client: Any, tmp_path: Any
) -> None:
    bucket = s3.new_bucket()
    client.put_object(Bucket=bucket, Key="data/a.csv", Body=b"1,2\n")
    ws.add_resource("data", "source-data", f"s3://{bucket}/data", endpoint=s3.url)
    ws.keep.add_remote("origin", str(tmp_path / "remote"))
    ws.snapshot("v1")
    ws.push()
    with Workspace.clone(str(tmp_path / "remote"), tmp_path / "clone") as clone:
        (data,) = clone.resources()
        assert (data.stored_path, data.endpoint) == (f"s3://{bucket}/data", s3.url)
        assert clone.status() == {}
