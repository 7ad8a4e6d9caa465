"""The put of an unchanged directory, answered from the stat cache and the SQLite index
without SQLAlchemy (datakeep.trees.unchanged), and every case where it must not answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import datakeep
from datakeep.keep import Keep
from datakeep.trees import statcache
from datakeep.trees.unchanged import unchanged_tree

from .conftest import run_cli


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_NS", 0)  # files just written count as settled


@pytest.fixture
def embedded(tmp_path: Path, settled: None) -> Iterator[Keep]:
    """A keep with the SQLite index in ``tmp_path``, where its files just written count
    as settled."""
    with datakeep.init(tmp_path) as keep:
        yield keep


def make_data(root: Path) -> Path:
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)))
    return data


@pytest.mark.usefixtures("settled")
def test_answers_for_an_embedded_keep_only(keep: Keep, index_url: str | None) -> None:
    data = make_data(keep.path.parent)
    tree = keep.put_tree(data)
    answer = unchanged_tree(keep.path, data)
    if index_url is None:
        assert answer == tree.digest
    else:
        assert answer is None  # a PostgreSQL index is asked through SQLAlchemy


def test_command_line_answers_without_loading_sqlalchemy(embedded: Keep, tmp_path: Path) -> None:
    tree = embedded.put_tree(make_data(tmp_path))
    script = (
        "import sys\n"
        "from datakeep.cli import main\n"
        "sys.argv = ['datakeep', 'put', 'data']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, check=True
    ).stdout.decode()
    assert out.splitlines() == [f"{tree.digest}  data", "False"]


def test_a_change_is_never_answered_from_the_remembered_tree(
    embedded: Keep, tmp_path: Path
) -> None:
    data = make_data(tmp_path)
    first = embedded.put_tree(data)
    (data / "a.txt").write_text("alpha, edited")
    assert unchanged_tree(embedded.path, data) is None
    (data / "new").mkdir()
    assert unchanged_tree(embedded.path, data) is None
    second = embedded.put_tree(data)
    assert second.digest != first.digest
    assert unchanged_tree(embedded.path, data) == second.digest
    out = run_cli("put", "data", cwd=tmp_path).stdout.decode()
    assert out == f"{second.digest}  data\n"


def test_declines_when_the_index_no_longer_holds_the_tree(embedded: Keep, tmp_path: Path) -> None:
    data = make_data(tmp_path)
    tree = embedded.put_tree(data)
    with embedded.db.write() as conn:
        conn.execute(text("DELETE FROM contents WHERE digest = :d"), {"d": tree.digest})
    assert unchanged_tree(embedded.path, data) is None
    # the full put stores the tree again
    assert embedded.put_tree(data).digest == tree.digest
    assert embedded.exists(tree.digest)


def test_declines_for_a_newer_schema_and_the_full_put_refuses_it(
    embedded: Keep, tmp_path: Path
) -> None:
    data = make_data(tmp_path)
    embedded.put_tree(data)
    with embedded.db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    assert unchanged_tree(embedded.path, data) is None
    result = run_cli("put", "data", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "9999_future" in result.stderr.decode()


def test_declines_when_the_index_uses_another_algorithm(embedded: Keep, tmp_path: Path) -> None:
    data = make_data(tmp_path)
    embedded.put_tree(data)
    with embedded.db.write() as conn:
        conn.execute(text("UPDATE keep_meta SET value = 'sha256' WHERE key = 'algorithm'"))
    assert unchanged_tree(embedded.path, data) is None


def test_declines_for_tags_files_links_and_a_broken_index(embedded: Keep, tmp_path: Path) -> None:
    data = make_data(tmp_path)
    tree = embedded.put_tree(data)
    (tmp_path / "alias").symlink_to(data)
    assert unchanged_tree(embedded.path, tmp_path / "alias") is None
    assert unchanged_tree(embedded.path, data / "a.txt") is None
    assert unchanged_tree(embedded.path, tmp_path / "missing") is None
    embedded.close()  # the index file is replaced below
    # tags must be recorded: the command line does a full put
    run_cli("put", "data", "--tag", "stage=raw", cwd=tmp_path)
    info = run_cli("info", tree.digest, "--json", cwd=tmp_path).stdout.decode()
    assert '"stage": "raw"' in info
    index = tmp_path / ".datakeep" / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"not a database" * 100)
    assert unchanged_tree(tmp_path / ".datakeep", data) is None


def test_a_changed_directory_is_read_once_by_the_command_line(
    embedded: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from datakeep.cli import cli
    from datakeep.trees import scan as scan_module

    data = make_data(tmp_path)
    embedded.put_tree(data)
    (data / "a.txt").write_text("alpha, edited")
    readings: list[Path] = []
    original = scan_module.scan
    monkeypatch.setattr(scan_module, "scan", lambda root: readings.append(root) or original(root))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["put", "data"])
    assert result.exit_code == 0, result.output
    assert readings == [Path("data")]  # the unchanged check's reading served the put
    assert result.output.split()[0] == embedded.put_tree(data).digest
