"""The command line's quick path: the small commands on an embedded keep load no
SQLAlchemy, and answer exactly as the full keep does (every case below is run both
ways and compared), handing everything unusual to the full keep."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import datakeep
from datakeep.errors import IndexFailure
from datakeep.index.plain import connect_plain
from datakeep.keep import Keep
from datakeep.quick import QuickKeep, Unanswered, open_quick

from .conftest import blob_path, damage, run_cli

SMALL_COMMANDS = ["ls", "info", "cat", "tag", "remote ls", "push", "verify"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An embedded keep holding a blob of its own file, an inline blob, a tree of packed
    and large files, an alias, odd tags, and a remote that holds everything."""
    root = tmp_path / "project"
    root.mkdir()
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    for i in range(5):
        (data / "sub" / f"part-{i}.csv").write_text(f"row,{i}\n" * 50)
    (data / "weights.bin").write_bytes(os.urandom(300_000))
    (root / "model.bin").write_bytes(os.urandom(100_000))
    with datakeep.init(root) as keep:
        keep.put_path(root / "model.bin", {"stage": "train", "note": "<b>\tbold</b>"})
        sha = "sha256:" + hashlib.sha256(b"inline bytes").hexdigest()
        keep.put(b"inline bytes", {"stage": "raw", "owner": "ana"}, expect=sha)
        keep.put_path(data, {"stage": "prep"})
        (tmp_path / "backup").mkdir()
        keep.add_remote("backup", str(tmp_path / "backup"))
        keep.push("backup")
    return root


def _both(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    """The command run on the quick path and with it turned off."""
    quick = run_cli(*args, cwd=root, check=False)
    full = run_cli(*args, cwd=root, check=False, env={**os.environ, "DATAKEEP_QUICK": "0"})
    return quick, full


def _same(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    quick, full = _both(root, *args)
    assert (quick.returncode, quick.stdout, quick.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    ), args
    return quick


def _digests(root: Path) -> dict[str, str]:
    with datakeep.open(root) as keep:
        return {c.tags["stage"]: c.digest for c in keep.find(has_tags=["stage"]).items}


def test_the_small_commands_import_no_sqlalchemy(project: Path) -> None:
    blob = _digests(project)["raw"]
    arguments = {
        "ls": ["ls"],
        "info": ["info", blob],
        "cat": ["cat", blob],
        "tag": ["tag", blob, "seen=yes"],
        "remote ls": ["remote", "ls"],
        "push": ["push", "backup"],
        "verify": ["verify", blob],
    }
    assert sorted(arguments) == sorted(SMALL_COMMANDS)
    for name, args in arguments.items():
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "datakeep", *args],
            cwd=project,
            capture_output=True,
        )
        assert result.returncode == 0, (name, result.stderr[-500:])
        imported = [line.rpartition("|")[2].strip() for line in result.stderr.decode().splitlines()]
        assert "datakeep.quick" in imported, name
        assert not [m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic")], name


def test_listings_and_lookups_answer_as_the_full_keep(project: Path) -> None:
    stages = _digests(project)
    blob, inline, tree = stages["train"], stages["raw"], stages["prep"]
    sha = "sha256:" + hashlib.sha256(b"inline bytes").hexdigest()
    listed = _same(project, "ls").stdout.decode()
    assert listed.count("stage=") == 3 and len(listed.splitlines()) == 9
    for args in (
        ["ls", "--full"],
        ["ls", "--json"],
        ["ls", "--tag", "owner"],
        ["ls", "--tag", "stage=pr*"],
        ["ls", "--tag", "stage=raw", "--tag", "owner=ana"],
        ["ls", "--tag", "note=<b>\tbold</b>"],
        ["ls", "--kind", "tree"],
        ["ls", "--limit", "1"],
        ["ls", "--after", blob.partition(":")[2][:8]],
        ["info", blob],
        ["info", tree.partition(":")[2][:7]],
        ["info", "--json", tree],
        ["info", sha],
        ["remote", "ls"],
        ["remote", "ls", "--json"],
    ):
        assert _same(project, *args).returncode == 0, args
    assert _same(project, "cat", inline).stdout == b"inline bytes"
    assert _same(project, "get", sha, "-").stdout == b"inline bytes"
    assert _same(project, "cat", blob).stdout == (project / "model.bin").read_bytes()
    assert _same(project, "verify", blob, inline).returncode == 0


def test_errors_answer_as_the_full_keep(project: Path) -> None:
    for args in (
        ["ls", "--after", "blake3:zz"],
        ["info", "000000"],
        ["info", "abc"],
        ["cat", "blake3:" + "0" * 64],
        ["tag", "blake3:" + "0" * 64, "a=b"],
        ["tag", "000000", "a=b"],
        ["verify", "000000"],
        ["push", "nowhere"],
    ):
        result = _same(project, *args)
        assert result.returncode != 0 and result.stderr.startswith(b"datakeep: error:"), args


def test_an_ambiguous_prefix_lists_its_candidates_either_way(project: Path) -> None:
    index = project / ".datakeep" / "index.sqlite"
    twins = [f"blake3:abcdef{c * 58}" for c in "12"]
    with sqlite3.connect(index) as db:
        db.executemany(
            "INSERT INTO contents (digest, size, kind, created_at) VALUES (?, 1, 'blob', 0)",
            [(t,) for t in twins],
        )
    result = _same(project, "info", "abcdef")
    assert result.returncode == 1
    assert all(t.encode() in result.stderr for t in twins)


def test_a_tree_and_a_large_blob_are_the_full_keeps(project: Path) -> None:
    """verify of a tree checks its files; cat of a blob over 4 MiB is read twice: both
    are answered by the full keep, with the same output."""
    tree = _digests(project)["prep"]
    result = _same(project, "verify", tree)
    assert result.stdout == b"ok: 7 contents, 302099 bytes checked\n"  # the tree, 6 files
    big = os.urandom(5 << 20)
    (project / "big.bin").write_bytes(big)
    digest = run_cli("put", "big.bin", cwd=project).stdout.split()[0].decode()
    assert _same(project, "cat", digest).stdout == big


def test_damage_is_served_from_a_mirror_or_reported_by_the_full_keep(project: Path) -> None:
    blob = _digests(project)["train"]
    good = (project / "model.bin").read_bytes()
    with datakeep.open(project) as keep:
        damage(blob_path(keep, blob), b"rotten")
    quick, full = _both(project, "cat", blob)  # the remote holds a copy: a mirror
    assert quick.returncode == full.returncode == 0
    assert quick.stdout == full.stdout == good
    assert b"served from mirror 'backup'" in quick.stderr
    run_cli("remote", "rm", "backup", cwd=project)
    for args in (["cat", blob], ["verify", blob]):
        quick, full = _both(project, *args)
        assert quick.returncode == full.returncode != 0, args
        assert quick.stdout == full.stdout
        assert b"rotten" not in quick.stdout  # never a byte of a damaged blob
        assert b"truncated: 6 of 100000 bytes" in quick.stdout + quick.stderr


def test_tag_writes_the_same_rows_and_push_sends_what_is_new(project: Path) -> None:
    inline = _digests(project)["raw"]
    quick, full = _both(project, "tag", inline, "owner=bea", "checked=yes")
    assert quick.stdout == full.stdout and quick.returncode == 0
    with datakeep.open(project) as keep:
        assert keep.info(inline).tags == {"stage": "raw", "owner": "bea", "checked": "yes"}
    assert (
        _same(project, "push", "backup").stdout == b"pushed 0 blob(s), 0 bytes; 0 already there\n"
    )
    (project / "new.txt").write_text("new")
    run_cli("put", "new.txt", cwd=project)
    sent = run_cli("push", cwd=project).stdout  # the quick path hands over: it sends
    assert sent == b"pushed 1 blob(s), 3 bytes; 0 already there\n"
    assert _same(project, "push").stdout.startswith(b"pushed 0 blob(s)")


def test_tag_leaves_the_keep_to_gc_while_gc_holds_it(project: Path) -> None:
    inline = _digests(project)["raw"]
    index = project / ".datakeep" / "index.sqlite"
    quick = open_quick(project)
    assert quick is not None
    fd = os.open(f"{index}-lease", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as gc holds it
        with quick, pytest.raises(Unanswered):
            quick.tag(inline, {"late": "yes"})
    finally:
        os.close(fd)
    with datakeep.open(project) as keep:
        assert "late" not in keep.info(inline).tags


def test_only_an_index_of_this_schema_and_algorithm_is_read(project: Path) -> None:
    index = project / ".datakeep" / "index.sqlite"
    assert connect_plain(index, "blake3") is not None
    assert connect_plain(index, "sha256") is None  # another algorithm
    assert connect_plain(project / "absent.sqlite", "blake3") is None
    copy = project / "old.sqlite"
    copy.write_bytes(index.read_bytes())
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    assert connect_plain(copy, "blake3") is None  # the full keep upgrades it first


def test_only_an_embedded_keep_is_answered_quickly(keep: Keep) -> None:
    found = open_quick(keep.path.parent)
    if keep.db.dialect == "sqlite":
        assert isinstance(found, QuickKeep)
        found.close()
    else:
        assert found is None  # PostgreSQL: the full path


def test_a_failing_read_is_an_error_not_a_second_answer(project: Path) -> None:
    quick = open_quick(project)
    assert quick is not None
    quick.db.close()
    with pytest.raises(IndexFailure, match="reading the index"):
        quick.find()
