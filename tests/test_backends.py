import tempfile
from pathlib import Path

import pytest

from datakeep.backends import LocalBackend, MemoryBackend, open_backend
from datakeep.errors import UnknownBackend
from datakeep.testing.backend import BackendTests, backend_state_machine


class TestLocalBackend(BackendTests):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalBackend:
        return LocalBackend(tmp_path / "objects")

    def test_blobs_are_read_only_files(self, backend: LocalBackend) -> None:
        backend.create("ro/one", b"x")
        with backend.stage() as staged:
            staged.write(b"y")
            staged.commit("ro/two")
        for key in ("ro/one", "ro/two"):
            assert backend.path_of(key).stat().st_mode & 0o222 == 0

    def test_no_temporary_files_left(self, backend: LocalBackend) -> None:
        backend.create("t/a", b"x")
        backend.create("t/a", b"x")
        with backend.stage() as staged:
            staged.write(b"z")
        assert list((backend.root / ".tmp").iterdir()) == []

    def test_moved_root_stays_readable(self, tmp_path: Path) -> None:
        first = LocalBackend(tmp_path / "before")
        first.create("k/v", b"kept")
        (tmp_path / "before").rename(tmp_path / "after")
        assert LocalBackend(tmp_path / "after").read("k/v") == b"kept"

    def test_sync_flushes_few_and_many(self, backend: LocalBackend) -> None:
        for i in range(3):
            backend.create(f"s/{i}", b"x")
        backend.sync()
        for i in range(100):
            backend.create(f"m/{i}", b"y")
        backend.sync()
        assert backend._unsynced == []


class TestMemoryBackend(BackendTests):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()


_MACHINE_DIRS = tempfile.TemporaryDirectory(prefix="datakeep-sm-")


def _local_in_fresh_dir() -> LocalBackend:
    return LocalBackend(tempfile.mkdtemp(dir=_MACHINE_DIRS.name))


TestLocalAgainstDict = backend_state_machine(_local_in_fresh_dir)
TestMemoryAgainstDict = backend_state_machine(MemoryBackend)


def test_unknown_backend_name_is_a_clear_error() -> None:
    with pytest.raises(UnknownBackend, match=r"datakeep\.local@v1"):
        open_backend("datakeep.nosuch@v9", {})
