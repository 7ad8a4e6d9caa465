"""fsspec's own abstract test suite, where it applies to a read-only filesystem: every
``get`` test (copying out of the filesystem). Its scenarios are written with the local
filesystem and stored as a tree instead of written through this one. The copy, put,
move, open and pipe suites write into the filesystem under test and do not apply."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.tests.abstract import AbstractFixtures, AbstractGetTests

from datakeep.fs import KeepFileSystem
from datakeep.keep import Keep

Scenario = Callable[[Any, Callable[..., str], str], str]


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


class TestKeepFileSystemGet(AbstractFixtures, AbstractGetTests):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, keep: Keep) -> KeepFileSystem:
        return KeepFileSystem(keep=keep)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return _join

    @pytest.fixture
    def fs_path(self, keep: Keep, tmp_path: Path) -> str:
        """A stored tree holding ``src/file``, for the test of issue 1062."""
        (tmp_path / "stored-src" / "src").mkdir(parents=True)
        (tmp_path / "stored-src" / "src" / "file").write_bytes(b"")
        return keep.put_tree(tmp_path / "stored-src").digest

    def _stored(self, keep: Keep, tmp_path: Path, scenario: Scenario) -> str:
        root = tmp_path / "stored"
        scenario(LocalFileSystem(auto_mkdir=True), os.path.join, str(root))
        return f"{keep.put_tree(root).digest}/source"

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, keep: Keep, tmp_path: Path) -> str:
        return self._stored(keep, tmp_path, self._bulk_operations_scenario_0)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, keep: Keep, tmp_path: Path) -> str:
        return self._stored(keep, tmp_path, self._glob_edge_cases_files)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, keep: Keep, tmp_path: Path) -> str:
        return self._stored(keep, tmp_path, self._dir_and_file_with_same_name_prefix)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, keep: Keep, tmp_path: Path) -> str:
        return self._stored(keep, tmp_path, self._10_files_with_hashed_names)

    def test_get_directory_recursive(
        self,
        fs: KeepFileSystem,
        fs_join: Callable[..., str],
        fs_path: str,
        local_fs: LocalFileSystem,
        local_join: Callable[..., str],
        local_target: str,
    ) -> None:
        """fsspec's test of its issue 1062, with the source stored first (fsspec's own
        version makes it with ``mkdir`` and ``touch`` on the filesystem under test)."""
        src = fs_join(fs_path, "src")
        for loop in range(2):
            fs.get(src, local_target, recursive=True)
            assert local_fs.isfile(local_join(local_target, "file"))
            assert local_fs.exists(local_join(local_target, "src")) == (loop == 1)
        local_fs.rm(local_target, recursive=True)
        for _ in range(2):
            fs.get(src + "/", local_target, recursive=True)
            assert local_fs.isfile(local_join(local_target, "file"))
            assert not local_fs.exists(local_join(local_target, "src"))
