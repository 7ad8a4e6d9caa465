"""The S3 backend against a real S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

import os

import pytest

from datakeep.backends import open_backend
from datakeep.backends._s3 import S3Backend
from datakeep.errors import StorageError
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
        import os

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


def test_wrong_credentials_are_a_one_line_storage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that checks signatures (moto with IAM checks on from the first request)."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
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
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        backend = S3Backend("bucket", endpoint=f"http://127.0.0.1:{port}", region="us-east-1")
        with pytest.raises(StorageError, match="check the credentials") as caught:
            backend.create("k", b"v")
        assert "\n" not in str(caught.value)
    finally:
        server.terminate()
        server.wait()
