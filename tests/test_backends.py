import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datakeep.backends import LocalBackend, MemoryBackend, open_backend
from datakeep.errors import UnknownBackend
from datakeep.testing.backend import BackendTests, backend_state_machine


def _refusing_tmpfile(real_open: Callable[..., int]) -> Callable[..., int]:
    """os.open as on a filesystem without O_TMPFILE (NFS, old kernels)."""

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), path)
        return real_open(path, flags, *args, **kwargs)

    return refusing


class TestLocalBackend(BackendTests):
    # blobs are written as anonymous files (O_TMPFILE): nothing appears in .tmp
    named_temps = False

    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalBackend:
        return LocalBackend(tmp_path / "objects")

    def test_a_staged_blob_is_named_only_when_published(self, backend: LocalBackend) -> None:
        temp_dir = backend.root / ".tmp"
        with backend.stage() as staged:
            staged.write(b"staged bytes")
            assert len(list(temp_dir.iterdir())) == (1 if self.named_temps else 0)
            assert list(backend.keys()) == []
            assert staged.commit("st/aged")
        assert list(temp_dir.iterdir()) == []
        assert backend.read("st/aged") == b"staged bytes"
        assert backend.path_of("st/aged").stat().st_nlink == 1

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


class TestLocalBackendNamedTemps(TestLocalBackend):
    """The same backend where the filesystem refuses O_TMPFILE: named files in .tmp."""

    named_temps = True

    @pytest.fixture
    def backend(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
        monkeypatch.setattr(os, "open", _refusing_tmpfile(os.open))
        return LocalBackend(tmp_path / "objects")

    def test_ingest_copies_through_a_named_file(
        self, backend: LocalBackend, tmp_path: Path
    ) -> None:
        source = tmp_path / "source.bin"
        source.write_bytes(b"ingested")
        assert backend.ingest("in/gested", source, "copy")
        assert backend.read("in/gested") == b"ingested"
        assert list((backend.root / ".tmp").iterdir()) == []


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
