"""Damage a keep the way a disk or a person does, then check what verify, pull, a re-put,
repair and cat make of it: every content a remote holds a good copy of ends up good
locally, and no command hands out wrong bytes or exits 0 over damage. On SQLite and
PostgreSQL, with a directory remote and the S3 test endpoint."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import datakeep
from datakeep.content import QUARANTINE
from datakeep.errors import IntegrityError, NotFound
from datakeep.keep import Keep
from datakeep.trees import decode_tree
from datakeep.trees.statcache import RACY_NS

from .conftest import (
    Where,
    blob_path,
    corrupt_inline,
    damage,
    damage_packed,
    init_args,
    run_cli,
)

MB = 1 << 20


def flip_byte(path: Path, offset: int) -> None:
    """Alter one byte in place, as a failing disk does."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    damage(path, bytes(data))


def tree_files(keep: Keep, tree: str) -> dict[str, str]:
    return {e.path: e.digest for e in decode_tree(keep.get(tree)) if e.digest is not None}


def dataset(root: Path) -> Path:
    (root / "small").mkdir(parents=True)
    for i in range(20):
        (root / "small" / f"s{i:02d}.txt").write_bytes(f"small {i} ".encode() * (i + 5))
    (root / "large.bin").write_bytes(secrets.token_bytes(3 * MB))
    return root


def quarantined(keep: Keep) -> list[str]:
    return list(keep.store.blob_keys(QUARANTINE))


# -- 1. pull heals -------------------------------------------------------------------------
def test_pull_restores_a_missing_and_a_corrupt_blob(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    location, endpoint = where("r")
    keep.add_remote("r", location, endpoint)
    lost, spoiled = keep.put(secrets.token_bytes(5 * MB)), keep.put(secrets.token_bytes(5 * MB))
    keep.push("r")
    good = {c.digest: keep.get(c.digest) for c in (lost, spoiled)}
    blob_path(keep, lost.digest).unlink()
    flip_byte(blob_path(keep, spoiled.digest), 2 * MB)

    report = keep.pull("r", [lost.digest, spoiled.digest])
    assert (report.transferred, report.already) == (2, 0)
    for digest, data in good.items():
        assert keep.get(digest) == data
    assert keep.verify_many().ok and keep.fsck().ok
    assert len(quarantined(keep)) == 1  # the damaged bytes are kept for inspection
    assert keep.pull("r").transferred == 0  # now good here: nothing to fetch


def test_pull_of_everything_heals_too(keep: Keep, where: Where) -> None:
    location, endpoint = where("r")
    keep.add_remote("r", location, endpoint)
    c = keep.put(secrets.token_bytes(2 * MB))
    keep.push("r")
    flip_byte(blob_path(keep, c.digest), 0)
    with pytest.raises(IntegrityError):
        keep.store.get(c.digest)
    assert keep.pull("r").transferred == 1
    assert keep.store.verify(c.digest).digest == c.digest


def test_pull_brings_back_what_fsck_repair_index_forgot(keep: Keep, where: Where) -> None:
    location, endpoint = where("r")
    keep.add_remote("r", location, endpoint)
    c = keep.put(secrets.token_bytes(MB))
    keep.push("r")
    flip_byte(blob_path(keep, c.digest), 10)
    fsck = keep.fsck(repair_index=True)
    assert fsck.forgotten == [c.digest]
    assert keep.info(c.digest).size == MB  # the remote's copy keeps it listed
    with pytest.raises(NotFound):
        keep.store.get(c.digest)
    assert keep.pull("r", [c.digest]).transferred == 1
    assert keep.verify(c.digest).digest == c.digest and keep.fsck().ok


def test_pull_of_a_tree_heals_its_packed_and_large_files(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    location, endpoint = where("r")
    keep.add_remote("r", location, endpoint)
    tree = keep.put_tree(dataset(tmp_path / "data"))
    keep.push("r", [tree.digest])
    files = tree_files(keep, tree.digest)
    packed = files["small/s03.txt"]
    damage_packed(keep, packed, b"X" * keep.info(packed).size)
    blob_path(keep, files["large.bin"]).unlink()

    report = keep.pull("r", [tree.digest])
    assert report.transferred == 2
    keep.verify(tree.digest)  # the tree with every file
    keep.export(tree.digest, tmp_path / "out")
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert (tmp_path / "out" / path.relative_to(tmp_path / "data")).read_bytes() == (
                path.read_bytes()
            )


def test_pull_command_heals_a_deleted_blob(tmp_path: Path, index_url: str | None) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "big.bin").write_bytes(secrets.token_bytes(5 * MB))
    run_cli("init", *init_args(index_url), cwd=project)
    run_cli("remote", "add", "r", str(tmp_path / "remote"), cwd=project)
    digest = run_cli("put", "big.bin", cwd=project).stdout.split()[0].decode()
    run_cli("push", "r", cwd=project)
    with datakeep.open(project) as keep:
        blob_path(keep, digest).unlink()
    pulled = run_cli("pull", "r", digest, cwd=project)
    assert b"pulled 1 blob(s)" in pulled.stdout
    out = run_cli("cat", digest, cwd=project).stdout
    assert out == (project / "big.bin").read_bytes()


# -- 2. verify of a tree checks its files ------------------------------------------------
def test_verify_of_a_tree_checks_every_file(keep: Keep, tmp_path: Path) -> None:
    tree = keep.put_tree(dataset(tmp_path / "data"))
    files = tree_files(keep, tree.digest)
    flip_byte(blob_path(keep, files["large.bin"]), 7)
    damage_packed(keep, files["small/s01.txt"], b"?" * keep.info(files["small/s01.txt"]).size)

    with pytest.raises(IntegrityError) as caught:
        keep.verify(tree.digest)
    assert "2 bad file(s)" in str(caught.value)
    assert "large.bin" in str(caught.value) and "small/s01.txt" in str(caught.value)
    assert keep.verify(tree.digest, shallow=True).digest == tree.digest  # the manifest is fine

    report = keep.verify_many([tree.digest])
    assert sorted(p.path for p in report.problems if p.path) == [
        f"{tree.digest}/large.bin",
        f"{tree.digest}/small/s01.txt",
    ]
    assert keep.verify_many([tree.digest], shallow=True).ok


def test_verify_command_reports_each_bad_path(tmp_path: Path) -> None:
    project = tmp_path / "p"
    dataset(project / "data")
    run_cli("init", cwd=project)
    tree = run_cli("put", "data", cwd=project).stdout.split()[0].decode()
    with datakeep.open(project) as keep:
        flip_byte(blob_path(keep, tree_files(keep, tree)["large.bin"]), 1)
    deep = run_cli("verify", tree, cwd=project, check=False)
    assert deep.returncode == 3
    assert f"BAD {tree}/large.bin (" in deep.stdout.decode()
    shallow = run_cli("verify", "--shallow", tree, cwd=project)
    assert shallow.stdout.startswith(b"ok: 1 contents")


# -- 3. cat never writes bytes of a damaged blob ----------------------------------------
def test_cat_writes_nothing_of_a_damaged_blob(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "big.bin").write_bytes(secrets.token_bytes(50 * MB))
    run_cli("init", cwd=project)
    digest = run_cli("put", "big.bin", cwd=project).stdout.split()[0].decode()
    with datakeep.open(project) as keep:
        flip_byte(blob_path(keep, digest), 30 * MB)
    for args in (["cat", digest], ["get", digest, "-"]):
        result = run_cli(*args, cwd=project, check=False)
        assert result.returncode == 1 and result.stdout == b""
        assert b"corrupted" in result.stderr
    one_pass = run_cli("cat", "--stream", digest, cwd=project, check=False)
    assert one_pass.returncode == 1  # documented: bytes may have gone out before the error
    assert len(one_pass.stdout) >= 30 * MB


@pytest.mark.parametrize("spool_max", [64 << 20, MB])
def test_stream_verifies_before_the_first_chunk(
    keep: Keep, monkeypatch: pytest.MonkeyPatch, spool_max: int
) -> None:
    monkeypatch.setattr("datakeep.reads.SPOOL_MAX", spool_max)  # from memory, or read twice
    data = secrets.token_bytes(3 * MB)
    c = keep.put(data)
    assert b"".join(keep.stream(c.digest, 1 << 16)) == data
    flip_byte(blob_path(keep, c.digest), 3 * MB - 1)  # the very last byte
    chunks = keep.stream(c.digest)
    with pytest.raises(IntegrityError):
        next(chunks)
    one_pass = keep.stream(c.digest, MB, verify_first=False)
    assert len(next(one_pass)) == MB  # the one-pass mode hands out bytes first


# -- 4. a re-put heals ----------------------------------------------------------------
def test_putting_the_same_content_again_replaces_a_damaged_copy(keep: Keep, tmp_path: Path) -> None:
    told: list[str] = []
    keep.on_repair = told.append
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(secrets.token_bytes(100_000))
    large.write_bytes(secrets.token_bytes(3 * MB))  # copied in the kernel
    streamed = secrets.token_bytes(2 * MB)
    contents = [keep.put_file(small), keep.put_file(large), keep.put(streamed)]
    for c in contents:
        flip_byte(blob_path(keep, c.digest), 5)
    keep.put_file(small)
    keep.put_file(large)
    keep.put_stream(iter([streamed[:MB], streamed[MB:]]))
    assert keep.verify_many().ok
    assert len(told) == 3 and all("corrupted" in line and "set aside" in line for line in told)
    assert len(quarantined(keep)) == 3


def test_a_re_put_replaces_a_damaged_packed_copy(keep: Keep, tmp_path: Path) -> None:
    tree = keep.put_tree(dataset(tmp_path / "data"))
    digest = tree_files(keep, tree.digest)["small/s02.txt"]
    original = (tmp_path / "data" / "small" / "s02.txt").read_bytes()
    damage_packed(keep, digest, b"!" * len(original))
    assert keep.put(original).digest == digest
    assert keep.get(digest) == original and keep.verify(tree.digest)


def test_a_good_copy_is_not_touched_by_a_re_put(keep: Keep) -> None:
    c = keep.put(secrets.token_bytes(MB))
    before = os.stat(blob_path(keep, c.digest))
    keep.put(keep.get(c.digest))
    after = os.stat(blob_path(keep, c.digest))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert quarantined(keep) == []


# -- 5, 6. the command line's put -------------------------------------------------------
def test_put_follows_a_link_given_on_the_command_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    dataset(project / "ds")
    (project / "dslink").symlink_to("ds")
    run_cli("init", cwd=project)
    direct = run_cli("put", "ds", cwd=project).stdout.split()[0]
    linked = run_cli("put", "dslink", cwd=project).stdout.split()[0]
    assert linked == direct


def test_put_of_several_paths_checks_them_all_first(tmp_path: Path) -> None:
    project = tmp_path / "p"
    dataset(project / "ds")
    run_cli("init", cwd=project)
    refused = run_cli("put", "ds", "nonexistent", cwd=project, check=False)
    assert refused.returncode == 1 and refused.stdout == b""
    assert refused.stderr == b"datakeep: error: no such file or directory: nonexistent\n"
    assert run_cli("ls", cwd=project).stdout == b""  # nothing was stored

    # an error met only while storing names what was stored and what was not
    bad = project / "bad"
    bad.mkdir()
    os.mkfifo(bad / "pipe")
    partial = run_cli("put", "ds", "bad", cwd=project, check=False)
    assert partial.returncode == 1
    assert partial.stdout.decode().endswith("  ds\n")
    assert "(stored: ds; not stored: bad)" in partial.stderr.decode()


# -- 7. repair ---------------------------------------------------------------------------
def test_repair_fetches_what_is_missing_or_damaged_from_the_remotes(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    first, second = where("one"), where("two")
    keep.add_remote("one", *first)
    keep.add_remote("two", *second)
    tree = keep.put_tree(dataset(tmp_path / "data"))
    kept_bytes = secrets.token_bytes(MB)
    only_on_two = keep.put(kept_bytes)
    nowhere = keep.put(secrets.token_bytes(MB))
    keep.push("one", [tree.digest])
    keep.push("two", [only_on_two.digest])
    files = tree_files(keep, tree.digest)
    flip_byte(blob_path(keep, files["large.bin"]), 3)
    damage_packed(keep, files["small/s07.txt"], b"#" * keep.info(files["small/s07.txt"]).size)
    blob_path(keep, only_on_two.digest).unlink()
    flip_byte(blob_path(keep, nowhere.digest), 3)

    report = keep.repair()
    assert report.repaired == {
        files["large.bin"]: "one",
        files["small/s07.txt"]: "one",
        only_on_two.digest: "two",
    }
    assert [p.digest for p in report.unrecoverable] == [nowhere.digest]
    assert not report.ok
    keep.verify(tree.digest)
    assert keep.get(only_on_two.digest) == kept_bytes
    bad = keep.verify_many()
    assert [p.digest for p in bad.problems] == [nowhere.digest]


def test_repair_after_repair_index_and_the_commands(tmp_path: Path, index_url: str | None) -> None:
    project = tmp_path / "p"
    dataset(project / "ds")
    run_cli("init", *init_args(index_url), cwd=project)
    run_cli("remote", "add", "r", str(tmp_path / "remote"), cwd=project)
    tree = run_cli("put", "ds", cwd=project).stdout.split()[0].decode()
    run_cli("push", "r", cwd=project)
    with datakeep.open(project) as keep:
        large = tree_files(keep, tree)["large.bin"]
        flip_byte(blob_path(keep, large), 0)
    assert run_cli("fsck", "--repair-index", cwd=project, check=False).returncode == 3
    assert run_cli("verify", tree, cwd=project, check=False).returncode == 3

    fixed = run_cli("fsck", "--repair", cwd=project)
    assert f"FETCHED {large} from r".encode() in fixed.stdout
    assert run_cli("verify", tree, cwd=project).returncode == 0
    again = run_cli("repair", cwd=project)
    assert again.stdout.decode().startswith("ok: ")

    with datakeep.open(project) as keep:
        keep.remove_remote("r")
        blob_path(keep, large).unlink()
    lost = run_cli("repair", "--json", cwd=project, check=False)
    assert lost.returncode == 3
    assert f'"digest": "{large}"' in lost.stdout.decode()


def test_a_re_put_heals_a_damaged_manifest_the_stat_cache_remembers(
    keep: Keep, tmp_path: Path
) -> None:
    src = tmp_path / "settled"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(1000))
    time.sleep(RACY_NS / 1e9 + 0.2)  # settled, so the stat cache remembers the tree
    tree = keep.put_tree(src).digest
    good = keep.get(tree)
    flip_byte(blob_path(keep, tree), 5)
    with pytest.raises(IntegrityError):
        keep.get(tree)
    assert keep.put_tree(src).digest == tree  # the same directory, answered by the cache
    assert keep.get(tree) == good
    assert any(p.is_file() for p in (keep.path / "objects" / QUARANTINE).rglob("*"))


# -- the invariant, under random damage ---------------------------------------------------
class DamageMachine(RuleBasedStateMachine):
    """Random puts, pushes, deletions and corruptions of blob files, pack members and
    index rows, then verify, pull and repair. Invariants: a read never returns wrong
    bytes; verify never says ok over damage; after a repair every content a remote holds
    a good copy of is good here."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="damage-"))
        self.keep = datakeep.init(self.root / "keep")
        self.keep.add_remote("r", str(self.root / "remote"))
        self.data: dict[str, bytes] = {}  # digest -> the true bytes
        self.trees: dict[str, set[str]] = {}  # tree -> the files it names
        self.pushed: set[str] = set()
        self.damaged: set[str] = set()

    def teardown(self) -> None:
        self.keep.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(size=st.sampled_from([0, 10, 5000, 70_000, 1_500_000]), seed=st.integers(0, 2**32))
    def put_blob(self, size: int, seed: int) -> None:
        data = random.Random(seed).randbytes(size)
        digest = self.keep.put(data).digest
        self.data[digest] = data
        self.damaged.discard(digest)  # a re-put of damaged content heals it

    @rule(seed=st.integers(0, 2**32))
    def put_tree(self, seed: int) -> None:
        rng = random.Random(seed)
        src = self.root / f"src-{seed}"
        src.mkdir(exist_ok=True)
        for i in range(rng.randint(1, 4)):
            (src / f"f{i}").write_bytes(rng.randbytes(rng.choice([20, 3000, 200_000])))
        files = {datakeep.digest.hash_bytes(p.read_bytes()): p.read_bytes() for p in src.iterdir()}
        tree = self.keep.put_tree(src)
        self.data |= files | {tree.digest: self.keep.get(tree.digest)}
        self.trees[tree.digest] = set(files)
        self.damaged -= set(files) - self.damaged_packed()  # a tree put re-stores files
        self.damaged.discard(tree.digest)  # and its manifest, checked even when remembered

    def damaged_packed(self) -> set[str]:
        return {d for d in self.damaged if "#" in self.keep.store.key_of(d)}

    @rule()
    def push(self) -> None:
        assert self.keep.verify_many().ok == (not self.damaged)
        # a push reads what it sends verified: a tree goes only with all its files good
        sound = {d for d in self.data if not (self.trees.get(d, set()) | {d}) & self.damaged}
        self.keep.push("r", sorted(sound))
        self.pushed |= sound

    @precondition(lambda self: self.data)
    @rule(pick=st.integers(0, 10_000), how=st.sampled_from(["flip", "delete", "row"]))
    def damage_one(self, pick: int, how: str) -> None:
        digest = sorted(self.data)[pick % len(self.data)]
        if digest in self.damaged or self.keep.info(digest).size == 0:
            return  # empty content cannot be altered in place
        key = self.keep.store.key_of(digest)
        if how == "row":
            if not key.startswith("@"):
                return
            corrupt_inline(self.keep, digest, b"x" + self.data[digest][1:])
        elif "#" in key:
            size = len(self.data[digest])
            damage_packed(self.keep, digest, bytes(b ^ 0xFF for b in self.data[digest][:size]))
        elif key.startswith("@"):
            return
        elif how == "delete":
            blob_path(self.keep, digest).unlink()
        else:
            flip_byte(blob_path(self.keep, digest), len(self.data[digest]) // 2)
        self.damaged.add(digest)

    @rule()
    def verify(self) -> None:
        report = self.keep.verify_many()
        assert {p.digest for p in report.problems} == self.damaged

    @rule()
    def pull(self) -> None:
        self.keep.pull("r")
        self.damaged -= self.pushed

    @rule()
    def repair(self) -> None:
        report = self.keep.repair()
        assert set(report.repaired) == self.damaged & self.pushed
        assert {p.digest for p in report.unrecoverable} == self.damaged - self.pushed
        self.damaged -= self.pushed

    @invariant()
    def reads_are_right_or_refused(self) -> None:
        for digest, data in self.data.items():
            try:
                got = self.keep.store.get(digest)
            except (IntegrityError, NotFound):
                assert digest in self.damaged
            else:
                assert got == data and digest not in self.damaged


TestDamageMachine = DamageMachine.TestCase
TestDamageMachine.settings = settings(
    max_examples=30, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
)
