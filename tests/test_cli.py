from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

import datakeep
from datakeep.cli import cli
from datakeep.digest import hash_bytes

from .conftest import blob_path, damage, init_args, run_cli


@pytest.fixture
def project(tmp_path: Path, index_url: str | None) -> Path:
    run_cli("init", *init_args(index_url), cwd=tmp_path)
    return tmp_path


def test_every_command_is_documented_with_an_example() -> None:
    ctx = click.Context(cli)
    assert "Example" in (cli.help or "")
    commands = [(name, command) for name, command in cli.commands.items()]
    while commands:
        name, command = commands.pop()
        help_text = command.get_help(ctx)
        assert "Example:" in help_text and f"datakeep {name}" in help_text, name
        if isinstance(command, click.Group):  # e.g. datakeep runs jobs
            commands += [(f"{name} {sub}", c) for sub, c in command.commands.items()]


def test_version() -> None:
    from datakeep import __version__

    out = subprocess.run(
        [sys.executable, "-m", "datakeep", "--version"], capture_output=True, check=True
    ).stdout.decode()
    assert __version__ in out


def test_put_get_cat_ls_info_verify(project: Path) -> None:
    (project / "data" / "sub").mkdir(parents=True)
    (project / "data" / "sub" / "x.csv").write_text("a,b\n1,2\n")
    (project / "model.bin").write_bytes(b"\x00\x01weights")
    out = run_cli("put", "data", "model.bin", "--tag", "run=42", cwd=project).stdout.decode()
    tree_digest, blob_digest = (line.split()[0] for line in out.splitlines())
    assert blob_digest == hash_bytes(b"\x00\x01weights")

    assert run_cli("cat", blob_digest, cwd=project).stdout == b"\x00\x01weights"
    run_cli("get", tree_digest, "restored", cwd=project)
    assert (project / "restored" / "sub" / "x.csv").read_text() == "a,b\n1,2\n"

    listed = [
        json.loads(line)
        for line in run_cli("ls", "--tag", "run=42", "--json", cwd=project).stdout.splitlines()
    ]
    assert {c["digest"] for c in listed} == {tree_digest, blob_digest}
    trees = run_cli("ls", "--kind", "tree", cwd=project).stdout.decode().split()
    assert trees[0] == tree_digest[7:19]  # short, as tables show digests
    full = run_cli("ls", "--kind", "tree", "--full", cwd=project).stdout.decode().split()
    assert full[:2] == [tree_digest, str(len(run_cli("cat", tree_digest, cwd=project).stdout))]

    info = json.loads(run_cli("info", tree_digest, "--json", cwd=project).stdout)
    assert info["kind"] == "tree" and info["tags"] == {"run": "42"}
    verified = run_cli("verify", "--all", cwd=project).stdout.decode()
    assert verified.startswith("ok: 3 contents")


def test_ls_paging(project: Path) -> None:
    for i in range(5):
        (project / f"f{i}").write_text(str(i))
        run_cli("put", f"f{i}", cwd=project)
    first = run_cli("ls", "--limit", "2", cwd=project).stdout.decode().split("\n")[:-1]
    rest = run_cli("ls", "--after", first[-1].split()[0], cwd=project).stdout.decode()
    assert len(first) == 2 and len(rest.splitlines()) == 3


def test_tag_and_untag(project: Path) -> None:
    (project / "f").write_text("x")
    digest = run_cli("put", "f", "--tag", "a=1", "--tag", "b=2", cwd=project).stdout.split()[0]
    run_cli("tag", digest.decode(), "c=3", cwd=project)
    run_cli("untag", digest.decode(), "a", cwd=project)
    info = json.loads(run_cli("info", digest.decode(), "--json", cwd=project).stdout)
    assert info["tags"] == {"b": "2", "c": "3"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "missing.txt"], "no such file"),
        (["cat", "blake3:xyz"], "malformed digest"),
        (["cat", "sha1:" + "a" * 40], "unknown hash algorithm"),
        (["get", "blake3:" + "a" * 64], "no content"),
        (["put", "f", "--tag", "novalue"], "KEY=VALUE"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    project: Path, args: list[str], message: str
) -> None:
    (project / "f").write_text("x")
    result = run_cli(*args, cwd=project, check=False)
    err = result.stderr.decode()
    assert result.returncode != 0
    assert message in err
    assert "Traceback" not in err


def test_no_keep_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("ls", cwd=tmp_path, check=False, env={**os.environ, "DATAKEEP_DIR": ""})
    assert result.returncode == 1
    assert "datakeep init" in result.stderr.decode()


def test_verify_reports_corruption_and_fails(project: Path) -> None:
    (project / "f").write_bytes(b"good bytes")
    (project / "g").write_bytes(b"other")
    digest = run_cli("put", "f", "g", cwd=project).stdout.split()[0].decode()
    blob = next(p for p in (project / ".datakeep" / "objects").rglob(digest.split(":")[1][2:]))
    blob.chmod(0o644)
    blob.write_bytes(b"evil bytes")
    result = run_cli("verify", "--all", "--json", cwd=project, check=False)
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["checked"] == 2
    assert [p["digest"] for p in report["problems"]] == [digest]
    assert run_cli("cat", digest, cwd=project, check=False).returncode == 1


def test_unreadable_file_is_refused(project: Path) -> None:
    secret = project / "secret"
    secret.write_text("x")
    secret.chmod(0o000)
    command = [sys.executable, "-m", "datakeep", "put", "secret"]
    if os.geteuid() == 0:  # root reads anything unless it gives up the capabilities to
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, cwd=project, capture_output=True)
    assert result.returncode == 1
    assert "permission denied" in result.stderr.decode()
    assert run_cli("ls", cwd=project).stdout == b""


def test_write_failure_mid_put_leaves_nothing(project: Path) -> None:
    big = project / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))

    def limit_file_size() -> None:
        # writes past 2 MiB fail with EFBIG, as a full disk would fail them
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, 2 * 1024 * 1024))

    result = subprocess.run(
        [sys.executable, "-m", "datakeep", "put", "big.bin"],
        cwd=project,
        capture_output=True,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1
    assert "cannot" in result.stderr.decode() and "Traceback" not in result.stderr.decode()
    objects = project / ".datakeep" / "objects"
    assert [p for p in objects.rglob("*") if p.is_file()] == []
    assert run_cli("ls", cwd=project).stdout == b""
    digest = run_cli("put", "big.bin", cwd=project).stdout.split()[0].decode()
    assert digest == hash_bytes(big.read_bytes())


def test_an_error_is_one_line_and_a_failed_init_leaves_nothing(tmp_path: Path) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/nope"
    failed = run_cli("init", "--index", unreachable, cwd=tmp_path, check=False)
    assert failed.returncode == 1 and failed.stdout == b""
    lines = failed.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datakeep: error: ") and "refused" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no .datakeep/ left behind
    verbose = run_cli("-v", "init", "--index", unreachable, cwd=tmp_path, check=False)
    assert len(verbose.stderr.decode().splitlines()) > 1  # the driver's other lines
    assert list(tmp_path.iterdir()) == []


def test_quarantined_files_are_shown_from_the_keeps_root(tmp_path: Path) -> None:
    """A person can open the path a repair prints from the directory holding .datakeep."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(200_000))
    run_cli("init", cwd=root)
    digest = run_cli("put", "big.bin", cwd=root).stdout.split()[0].decode()
    with datakeep.open(root) as keep:
        damage(blob_path(keep, digest), b"rotten")
    result = run_cli("fsck", "--repair-index", cwd=root, check=False)
    line = next(x for x in result.stdout.decode().splitlines() if x.startswith("REPAIRED"))
    shown = line.rpartition(" as ")[2]
    assert shown.startswith(".datakeep/objects/quarantine/"), line
    assert (root / shown).read_bytes() == b"rotten"
