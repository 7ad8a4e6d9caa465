"""The backend conformance suite, shipped so that every backend (ours or yours) proves
the same contract. A backend's test module needs a few lines::

    from datakeep.testing.backend import BackendTests, backend_state_machine

    class TestMyBackend(BackendTests):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyBackend(tmp_path)

    TestMyBackendMachine = backend_state_machine(lambda: MyBackend(...))

Requires pytest and hypothesis.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ..backends import Backend, BlobInfo, open_backend
from ..errors import InvalidPath, NotFound

__all__ = ["BackendTests", "backend_state_machine"]

# Larger than the content store's 1 MiB chunk and than an S3 multipart part (5 MiB).
LARGE = 13 * 1024 * 1024 + 7


def _pattern(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class BackendTests:
    """Contract tests; a subclass provides a ``backend`` fixture returning a fresh backend."""

    def test_create_then_read(self, backend: Backend) -> None:
        assert backend.create("a/b/one", b"hello") is True
        assert backend.read("a/b/one") == b"hello"
        with backend.open("a/b/one") as f:
            assert f.read() == b"hello"
        assert backend.head("a/b/one") == BlobInfo("a/b/one", 5)

    def test_head_and_list_say_when_a_blob_was_stored(self, backend: Backend) -> None:
        before = time.time()
        backend.create("when/stored", b"x")
        listed = next(iter(backend.list("when/")))
        for info in (backend.head("when/stored"), listed):
            # gc spares young orphans by this time; allow for coarse filesystem clocks
            assert before - 2 <= info.modified <= time.time() + 2

    def test_stage_then_commit(self, backend: Backend) -> None:
        with backend.stage() as staged:
            staged.write(b"hel")
            staged.write(memoryview(b"lo"))
            assert staged.commit("k/staged") is True
        assert backend.read("k/staged") == b"hello"

    def test_empty_content(self, backend: Backend) -> None:
        assert backend.create("empty/value", b"") is True
        with backend.stage() as staged:
            assert staged.commit("empty/stream") is True
        for key in ("empty/value", "empty/stream"):
            assert backend.read(key) == b""
            assert backend.head(key).size == 0
            with backend.open(key) as f:
                assert f.read() == b""

    def test_content_larger_than_any_buffer(self, backend: Backend) -> None:
        data = _pattern(LARGE)
        with backend.stage() as staged:
            for i in range(0, len(data), 999_983):  # odd chunk size on purpose
                staged.write(data[i : i + 999_983])
            staged.commit("big/stream")
        assert backend.create("big/value", data) is True
        for key in ("big/stream", "big/value"):
            assert backend.head(key).size == LARGE
            with backend.open(key) as f:
                assert f.read() == data

    def test_missing_is_not_found(self, backend: Backend) -> None:
        for call in (backend.read, backend.open, backend.head):
            with pytest.raises(NotFound):
                call("no/such/key")
        # the same exception also reads as the builtins a caller expects
        with pytest.raises(FileNotFoundError):
            backend.read("no/such/key")
        with pytest.raises(KeyError):
            backend.head("no/such/key")
        assert backend.delete("no/such/key") is False

    def test_duplicate_write_is_idempotent(self, backend: Backend) -> None:
        assert backend.create("dup", b"same") is True
        assert backend.create("dup", b"same") is False
        with backend.stage() as staged:
            staged.write(b"same")
            assert staged.commit("dup") is False
        assert backend.read("dup") == b"same"
        assert [b.key for b in backend.list("dup")] == ["dup"]

    def test_create_only_never_overwrites(self, backend: Backend) -> None:
        backend.create("once", b"first")
        assert backend.create("once", b"second, longer") is False
        with backend.stage() as staged:
            staged.write(b"third")
            assert staged.commit("once") is False
        assert backend.read("once") == b"first"

    def test_concurrent_writes_of_the_same_content(self, backend: Backend) -> None:
        data = _pattern(300_000, seed=7)
        results: list[bool] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def write(use_stage: bool) -> None:
            try:
                barrier.wait()
                if use_stage:
                    with backend.stage() as staged:
                        staged.write(data)
                        results.append(staged.commit("race/key"))
                else:
                    results.append(backend.create("race/key", data))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i % 2 == 0,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(results) == [False] * 7 + [True]
        assert backend.read("race/key") == data

    def test_ranges(self, backend: Backend) -> None:
        data = bytes(range(256)) * 4
        backend.create("ranged", data)
        assert backend.read("ranged", 10, 20) == data[10:20]
        assert backend.read("ranged", 1000) == data[1000:]
        assert backend.read("ranged", 0, 0) == b""
        assert backend.read("ranged", 1020, 5000) == data[1020:]
        with backend.open("ranged", 512) as f:
            assert f.read(4) == data[512:516]
            assert f.read() == data[516:]

    def test_listing(self, backend: Backend) -> None:
        keys = ["x/aa/1", "x/aa/2", "x/ab/3", "y/4", "x/b"]
        for i, key in enumerate(keys):
            backend.create(key, b"v" * i)
        assert sorted(b.key for b in backend.list()) == sorted(keys)
        assert sorted(b.key for b in backend.list("x/a")) == ["x/aa/1", "x/aa/2", "x/ab/3"]
        assert sorted(b.key for b in backend.list("x/aa/")) == ["x/aa/1", "x/aa/2"]
        assert {b.key: b.size for b in backend.list("y")} == {"y/4": 3}
        assert list(backend.list("nothing/")) == []

    def test_abort_leaves_nothing(self, backend: Backend) -> None:
        with backend.stage() as staged:
            staged.write(b"discard me")
        staged = backend.stage()
        staged.write(b"and me")
        staged.abort()
        assert list(backend.list()) == []

    def test_delete(self, backend: Backend) -> None:
        backend.create("gone", b"x")
        assert backend.delete("gone") is True
        with pytest.raises(NotFound):
            backend.read("gone")
        assert backend.create("gone", b"again") is True
        assert backend.read("gone") == b"again"

    @pytest.mark.parametrize(
        "key", ["", "../up", "a/../b", "/abs", "a//b", ".hidden", "a/", "sp ace", "a\x00b"]
    )
    def test_unsafe_keys_are_refused(self, backend: Backend, key: str) -> None:
        with pytest.raises(InvalidPath):
            backend.create(key, b"x")
        with pytest.raises(InvalidPath):
            backend.read(key)
        assert list(backend.list()) == []

    def test_permanent_name_is_registered(self, backend: Backend) -> None:
        again = open_backend(backend.name, backend.config())
        assert type(again) is type(backend)


def backend_state_machine(factory: Callable[[], Backend]) -> Any:
    """A Hypothesis state machine checking a backend against a plain dict; returns the
    ``TestCase`` class to assign to a module-level name."""

    keys = st.sampled_from(["a", "b", "a/b", "c/d/e", "f1"])
    payloads = st.binary(max_size=2048)

    class BackendAgainstDict(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.backend = factory()
            self.model: dict[str, bytes] = {}

        @rule(key=keys, data=payloads)
        def create(self, key: str, data: bytes) -> None:
            # On a filesystem a key cannot also be a directory of other keys; the content
            # store's fan-out keys never nest, so the model skips such pairs.
            if any(k.startswith(key + "/") or key.startswith(k + "/") for k in self.model):
                return
            created = self.backend.create(key, data)
            assert created == (key not in self.model)
            self.model.setdefault(key, data)

        @rule(key=keys, data=payloads)
        def stage(self, key: str, data: bytes) -> None:
            if any(k.startswith(key + "/") or key.startswith(k + "/") for k in self.model):
                return
            with self.backend.stage() as staged:
                staged.write(data)
                created = staged.commit(key)
            assert created == (key not in self.model)
            self.model.setdefault(key, data)

        @rule(key=keys)
        def delete(self, key: str) -> None:
            assert self.backend.delete(key) == (key in self.model)
            self.model.pop(key, None)

        @rule(key=keys, start=st.integers(0, 3000), length=st.integers(0, 3000))
        def read(self, key: str, start: int, length: int) -> None:
            if key in self.model:
                got = self.backend.read(key, start, start + length)
                assert got == self.model[key][start : start + length]
            else:
                with pytest.raises(NotFound):
                    self.backend.read(key)

        @invariant()
        def listing_matches(self) -> None:
            listed = {b.key: b.size for b in self.backend.list()}
            assert listed == {k: len(v) for k, v in self.model.items()}

    BackendAgainstDict.TestCase.settings = settings(
        max_examples=40, stateful_step_count=25, deadline=None
    )
    return BackendAgainstDict.TestCase
