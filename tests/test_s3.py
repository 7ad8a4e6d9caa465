"""The S3 backend against a real S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import obstore
import pytest

from datakeep.backends import open_backend
from datakeep.backends._s3 import S3Backend
from datakeep.errors import InvalidInput, NotFound, StorageError
from datakeep.testing.backend import BackendTests, backend_state_machine

from .s3server import S3Endpoint, s3  # noqa: F401  (the session fixture)

SMALL_STAGE = 6 << 20


class TestS3Backend(BackendTests):
    @pytest.fixture
    def backend(self, s3: S3Endpoint) -> S3Backend:  # noqa: F811
        return S3Backend(
            s3.new_bucket(), prefix="keep/objects", endpoint=s3.url, region="us-east-1"
        )

    def test_large_staged_blob_streams_and_is_published_create_only(
        self, backend: S3Backend
    ) -> None:
        part = bytes(range(256)) * 4096  # 1 MiB
        with backend.stage() as staged:
            for _ in range(SMALL_STAGE // len(part) + 3):
                staged.write(part)
            assert staged.commit("big/one") is True
        size = (SMALL_STAGE // len(part) + 3) * len(part)
        assert backend.head("big/one").size == size
        with backend.stage() as staged:
            for _ in range(SMALL_STAGE // len(part) + 3):
                staged.write(b"\0" * len(part))
            assert staged.commit("big/one") is False  # never overwritten
        assert backend.read("big/one", 0, 256) == bytes(range(256))
        assert [b.key for b in backend.list()] == ["big/one"]  # no staging left behind

    def test_config_holds_no_credentials_and_reopens(self, backend: S3Backend) -> None:
        backend.create("k", b"v")
        config = backend.config()
        assert "secret" not in str(config).lower() and "testing" not in str(config)
        assert open_backend(S3Backend.name, config).read("k") == b"v"


def test_missing_bucket_is_a_clear_storage_error(s3: S3Endpoint) -> None:  # noqa: F811
    backend = S3Backend("no-such-bucket", endpoint=s3.url, region="us-east-1")
    with pytest.raises(StorageError, match="bucket does not exist"):
        backend.create("k", b"v")
    with pytest.raises(StorageError, match="bucket does not exist"):
        list(backend.list())


def test_unreachable_endpoint_is_a_clear_storage_error() -> None:
    backend = S3Backend("b", endpoint="http://127.0.0.1:9", region="us-east-1")
    with pytest.raises(StorageError, match="S3 could not write"):
        backend.create("k", b"v")


_endpoint: list[str] = []


def _fresh_s3_backend() -> S3Backend:
    """For the state machine, which cannot take fixtures: one server for the module."""
    if not _endpoint:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        _endpoint.append(f"http://{host}:{port}")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = S3Endpoint(_endpoint[0])
    return S3Backend(endpoint.new_bucket(), endpoint=endpoint.url, region="us-east-1")


TestS3AgainstDict = backend_state_machine(_fresh_s3_backend)


@dataclass(frozen=True)
class CheckingServer:
    """moto with IAM checks on: one user whose keys may use ``bucket``, and nobody else."""

    url: str
    key_id: str
    secret: str


_SETUP_REQUESTS = 4  # create user, allow S3, create keys, create bucket: then checks start


@pytest.fixture(scope="module")
def checking_server() -> Iterator[CheckingServer]:
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        setup = {"endpoint_url": url, "region_name": "us-east-1"}
        setup_keys = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup, **setup_keys)
        iam.create_user(UserName="team")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="team", PolicyName="s3", PolicyDocument=json.dumps(policy))
        keys = iam.create_access_key(UserName="team")["AccessKey"]
        boto3.client("s3", **setup, **setup_keys).create_bucket(Bucket="bucket")
        yield CheckingServer(url, keys["AccessKeyId"], keys["SecretAccessKey"])
    finally:
        server.terminate()
        server.wait()


def test_wrong_credentials_are_a_one_line_storage_error(
    checking_server: CheckingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    backend = S3Backend("bucket", endpoint=checking_server.url, region="us-east-1")
    with pytest.raises(StorageError, match="check the credentials") as caught:
        backend.create("k", b"v")
    assert "\n" not in str(caught.value)


def _aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_id: str, secret: str) -> None:
    """A profile ``team`` in AWS config files, and nothing in the environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"
        f"[team]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = eu-west-3\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "team")


def test_credentials_and_region_come_from_the_aws_config_files(
    checking_server: CheckingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_files(tmp_path, monkeypatch, checking_server.key_id, checking_server.secret)
    backend = S3Backend("bucket", prefix="p", endpoint=checking_server.url)
    assert backend.create("k", b"from the profile") is True
    assert backend.read("k") == b"from the profile"
    assert backend.config()["region"] is None  # the profile's region is not written down
    assert _signing_region(backend) == "eu-west-3"

    # the default profile's keys are wrong: the server refuses them, so the above used 'team'
    monkeypatch.setenv("AWS_PROFILE", "default")
    with pytest.raises(StorageError, match="check the credentials"):
        S3Backend("bucket", prefix="p", endpoint=checking_server.url).read("k")

    # keys in the environment win over the files, as in every AWS SDK
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", checking_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", checking_server.secret)
    assert S3Backend("bucket", prefix="p", endpoint=checking_server.url).read("k") == (
        b"from the profile"
    )


def test_an_unknown_profile_is_a_clear_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_files(tmp_path, monkeypatch, "k", "s")
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(StorageError, match="nobody"):
        S3Backend("bucket", endpoint="http://127.0.0.1:9")


def _signing_region(backend: S3Backend) -> str:
    url = obstore.sign(backend._store, "GET", "k", timedelta(minutes=1))
    return url.split("X-Amz-Credential=")[1].split("%2F")[2]


def test_routes_send_keys_to_other_buckets(s3: S3Endpoint) -> None:  # noqa: F811
    main, models = s3.new_bucket(), s3.new_bucket()
    backend = S3Backend(
        main,
        prefix="keep",
        endpoint=s3.url,
        region="us-east-1",
        routes={"model": f"s3://{models}/team/weights"},
        stage_in_memory=SMALL_STAGE,
    )
    assert backend.create("blake3/ab/cd", b"plain") is True
    assert backend.create("model/blake3/ef/01", b"weights") is True
    assert backend.create("model/blake3/ef/01", b"other") is False  # create-only there too
    big = os.urandom(SMALL_STAGE * 2 + 12345)  # past the stage twice: spooled, sent once
    with backend.stage() as staged:
        for start in range(0, len(big), 1 << 20):
            staged.write(big[start : start + (1 << 20)])
        assert staged.commit("model/blake3/ff/big") is True

    # where the bytes really are: each bucket seen on its own
    only_models = S3Backend(models, prefix="team/weights", endpoint=s3.url, region="us-east-1")
    assert only_models.read("blake3/ef/01") == b"weights"
    assert only_models.head("blake3/ff/big").size == len(big)
    assert [b.key for b in only_models.list()] == ["blake3/ef/01", "blake3/ff/big"]
    only_main = S3Backend(main, prefix="keep", endpoint=s3.url, region="us-east-1")
    assert [b.key for b in only_main.list()] == ["blake3/ab/cd"]

    # through the routed backend, keys read, list and delete as one key space
    assert backend.read("model/blake3/ef/01") == b"weights"
    assert backend.read("model/blake3/ff/big") == big  # spooled, then sent whole and in order
    assert sorted(b.key for b in backend.list()) == [
        "blake3/ab/cd",
        "model/blake3/ef/01",
        "model/blake3/ff/big",
    ]
    assert [b.key for b in backend.list("model/blake3/e")] == ["model/blake3/ef/01"]
    assert [b.key for b in backend.list("blake3/")] == ["blake3/ab/cd"]
    reopened = open_backend(S3Backend.name, backend.config())
    assert reopened.read("model/blake3/ef/01") == b"weights"
    assert reopened.delete("model/blake3/ef/01") is True
    assert only_models.delete("blake3/ef/01") is False
    with pytest.raises(NotFound):
        backend.head("model/blake3/ef/01")


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"a/b": "s3://x"}, "one plain path segment"),
        ({"": "s3://x"}, "one plain path segment"),
        ({"m": "/tmp/dir"}, "s3://bucket/prefix"),
        ({"m": "s3://"}, "s3://bucket/prefix"),
    ],
)
def test_bad_routes_are_refused(routes: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        S3Backend("b", endpoint="http://127.0.0.1:9", region="us-east-1", routes=routes)


def test_an_abandoned_spooled_blob_leaves_nothing_behind(s3: S3Endpoint) -> None:  # noqa: F811
    main, models = s3.new_bucket(), s3.new_bucket()
    backend = S3Backend(
        main,
        endpoint=s3.url,
        region="us-east-1",
        routes={"model": f"s3://{models}"},
        stage_in_memory=SMALL_STAGE,
    )
    with pytest.raises(RuntimeError), backend.stage() as staged:
        staged.write(os.urandom(SMALL_STAGE + 1))
        raise RuntimeError("the writer failed half way")
    assert list(backend.list()) == []
    assert list(S3Backend(models, endpoint=s3.url, region="us-east-1").list()) == []
