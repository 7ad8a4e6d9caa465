from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import datakeep
from datakeep.keep import Keep

from .s3server import S3Endpoint, s3  # noqa: F401  (the session fixture)

POSTGRES_URL = os.environ.get(
    "DATAKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest) -> str | None:
    """The index of the keep under test: None for the embedded SQLite default, else a
    fresh PostgreSQL schema on the real server. Every keep test runs on both."""
    if request.param == "sqlite":
        return None
    return new_postgres_schema(request.getfixturevalue("postgres_url"))


def new_postgres_schema(database_url: str) -> str:
    """A URL of an empty schema of its own in the session's test database."""
    import psycopg

    schema = f"k_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{database_url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def keep(tmp_path: Path, index_url: str | None) -> Iterator[Keep]:
    with datakeep.init(tmp_path / "project", index=index_url) as k:
        yield k


Where = Callable[[str], tuple[str, str | None]]


@pytest.fixture(params=["directory", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """Where a remote lives: a fresh directory or a fresh bucket."""

    def place(name: str) -> tuple[str, str | None]:
        if request.param == "directory":
            return str(tmp_path / f"remote-{name}"), None
        endpoint: S3Endpoint = request.getfixturevalue("s3")
        return f"s3://{endpoint.new_bucket()}/team", endpoint.url

    return place


def init_args(index_url: str | None) -> list[str]:
    """``datakeep init`` arguments for the index under test."""
    return [] if index_url is None else ["--index", index_url]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session on the real server, dropped afterwards."""
    import psycopg

    name = f"datakeep_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("DATAKEEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_URL.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_cli(
    *args: str, cwd: Path, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[bytes]:
    """Run the real command line in a child process."""
    result = subprocess.run(
        [sys.executable, "-m", "datakeep", *args],
        cwd=cwd,
        capture_output=True,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and result.returncode != 0:
        raise AssertionError(f"datakeep {' '.join(args)} failed: {result.stderr.decode()}")
    return result  # type: ignore[no-any-return]


def blob_path(keep: Keep, digest: str) -> Path:
    """The file holding a blob in a local keep (for tests that damage it on purpose)."""
    return keep.store.backend.path_of(keep.store.key_of(digest))  # type: ignore[attr-defined,no-any-return]


def damage(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def corrupt_inline(keep: Keep, digest: str, data: bytes) -> None:
    """Alter a small content kept in the index, behind datakeep's back."""
    from sqlalchemy import update

    from datakeep.index import inline_blobs

    with keep.db.write() as conn:
        changed = conn.execute(
            update(inline_blobs).where(inline_blobs.c.digest == digest).values(data=data)
        ).rowcount
    assert changed == 1, f"{digest} is not an inline blob"


def damage_packed(keep: Keep, digest: str, data: bytes) -> None:
    """Overwrite, in place, the bytes of a content kept in a pack (same length, so the
    pack's other members stay intact)."""
    from datakeep.content.packs import pack_member

    member = pack_member(keep.store.key_of(digest))
    assert member is not None, f"{digest} is not in a pack"
    assert len(data) == member.length, "a packed content is damaged in place, same length"
    path = keep.store.backend.path_of(member.pack)  # type: ignore[attr-defined]
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(member.offset)
        f.write(data)


def count_reads(keep: Keep, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files a put reads (and hashes) from now on, in order."""
    read: list[Path] = []
    for name in ("write_file", "read_small_file"):
        original = getattr(keep.store, name)

        def counting(path: str, *args: object, _original: Any = original, **kw: object) -> Any:
            read.append(Path(path))
            return _original(path, *args, **kw)

        monkeypatch.setattr(keep.store, name, counting)
    return read
