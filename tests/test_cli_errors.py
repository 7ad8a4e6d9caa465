"""The command line's errors and exit statuses: usage errors, damage, a reader that goes
away, missing credentials."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import blob_path, damage, run_cli
from .s3server import S3Endpoint


@pytest.fixture
def project(tmp_path: Path) -> Path:
    run_cli("init", cwd=tmp_path)
    return tmp_path


def test_usage_errors_are_one_line_and_the_usage_exit_2(project: Path) -> None:
    for args, wrong in (
        (["tag", "blake3:00"], "Missing argument"),
        (["put", "x", "--tag", "noequals"], "is not KEY=VALUE"),
        (["ls", "--limit", "0"], "--limit"),
        (["nosuchcommand"], "No such command"),
    ):
        result = run_cli(*args, cwd=project, check=False)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 2, args
        assert len(lines) == 2 and lines[0].startswith("datakeep: error: ") and wrong in lines[0]
        assert lines[1].startswith("Usage: datakeep")


def test_errors_exit_1_and_damage_exits_3(project: Path) -> None:
    missing = run_cli("info", "blake3:" + "0" * 64, cwd=project, check=False)
    assert missing.returncode == 1 and missing.stderr.decode().count("\n") == 1
    (project / "f").write_bytes(b"x" * 100_000)
    digest = run_cli("put", "f", cwd=project).stdout.split()[0].decode()
    import datakeep

    with datakeep.open(project) as keep:
        damage(blob_path(keep, digest), b"y" * 100_000)
    assert run_cli("verify", digest, cwd=project, check=False).returncode == 3
    assert run_cli("fsck", cwd=project, check=False).returncode == 3
    assert run_cli("repair", cwd=project, check=False).returncode == 3  # no remote to heal from
    unknown = run_cli("runs", "records", "UNKNOWN", cwd=project, check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.decode().strip() == "datakeep: error: no master job 'UNKNOWN'"


def test_a_reader_that_goes_away_ends_the_command_quietly(project: Path) -> None:
    for n in range(300):
        (project / f"f{n}").write_text(str(n))
    run_cli("put", *[f"f{n}" for n in range(300)], cwd=project)
    lister = subprocess.Popen(
        [sys.executable, "-m", "datakeep", "ls"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert lister.stdout is not None and lister.stdout.readline()
    lister.stdout.close()  # as `head -1` does
    assert lister.wait(timeout=60) == -signal.SIGPIPE  # as git and cat end: by the signal
    assert lister.stderr is not None and lister.stderr.read() == b""


def test_s3_without_credentials_says_so(
    tmp_path: Path, s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    import obstore

    from datakeep.backends import open_s3_store, translated_errors
    from datakeep.errors import StorageError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws either
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    store = open_s3_store("s3://bucket/prefix", s3.url)
    with pytest.raises(StorageError) as caught, translated_errors("read", "k"):
        obstore.get(store, "k")
    assert str(caught.value) == (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    )


def test_gc_with_nothing_to_remove_says_so(project: Path) -> None:
    out = run_cli("gc", cwd=project).stdout.decode().strip()
    assert out == "nothing to remove (grace 24h); kept 0 live, 0 stored within the grace of 24h"


def test_info_reads_like_a_person_writes(project: Path) -> None:
    (project / "d").mkdir()
    (project / "d" / "a").write_bytes(b"a" * 2048)
    (project / "d" / "b").write_bytes(b"b")
    tree = run_cli("put", "d", "--tag", "run=7", cwd=project).stdout.split()[0].decode()
    text = run_cli("info", tree, cwd=project).stdout.decode()
    fields = dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) > 1)
    assert fields["data"] == "2.0 KiB in 2 file(s)" and fields["tags"] == "run=7"
    created = datetime.fromisoformat(fields["created"])
    assert created.tzinfo is not None and abs(created.timestamp() - time.time()) < 120
    import json

    shown = json.loads(run_cli("info", tree, "--json", cwd=project).stdout)
    assert (shown["files"], shown["data_size"]) == (2, 2049)


def test_shell_completion_scripts(project: Path) -> None:
    import os

    for shell in ("bash", "zsh", "fish"):
        env = {**os.environ, "_DATAKEEP_COMPLETE": f"{shell}_source"}
        script = subprocess.run(
            [sys.executable, "-c", "from datakeep.cli import main; main()"],
            cwd=project,
            env=env,
            capture_output=True,
        )
        assert script.returncode == 0 and b"_DATAKEEP_COMPLETE" in script.stdout, shell


def test_no_command_prints_the_help(project: Path) -> None:
    for args in ([], ["ws"]):
        result = run_cli(*args, cwd=project)
        assert result.stdout.startswith(b"Usage: datakeep") and result.stderr == b""
