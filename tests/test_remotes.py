"""Remotes, push and pull: to another directory and to S3 (the real endpoint)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

import datakeep
from datakeep.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from datakeep.keep import Keep

from .conftest import Where, run_cli


def where_on_remote(keep: Keep, remote: str, digest: str) -> dict[str, object]:
    """The inventory's pointer: {"key": ...} or, for a packed blob, {"pack", "offset", ...}."""
    import json

    from sqlalchemy import select

    from datakeep.index import placements

    with keep.db.read() as conn:
        pointer = conn.execute(
            select(placements.c.pointer).where(
                placements.c.digest == digest, placements.c.location == remote
            )
        ).scalar_one()
    return dict(json.loads(pointer))


def spoil_on_remote(keep: Keep, remote: str, digest: str) -> None:
    """Alter a blob on the remote (same size), behind datakeep's back."""
    backend = next(r for r in keep.remotes if r.name == remote).open()
    pointer = where_on_remote(keep, remote, digest)
    key = str(pointer.get("pack") or pointer["key"])
    data = bytearray(backend.read(key))
    start = int(pointer.get("offset", 0))  # type: ignore[call-overload]
    length = int(pointer.get("length", len(data)))  # type: ignore[call-overload]
    data[start + length // 2] ^= 0xFF
    backend.delete(key)
    backend.create(key, bytes(data))


def dataset(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(30):
        (root / "sub" / f"f{i:02d}").write_bytes(f"small file {i}".encode() * (i + 1))
    (root / "large.bin").write_bytes(bytes(range(256)) * 40_000)  # 10 MB: staged upload
    return root


def test_push_then_pull_into_an_empty_keep(keep: Keep, tmp_path: Path, where: Where) -> None:
    location, endpoint = where("a")
    keep.add_remote("origin", location, endpoint)
    tree = keep.put_tree(dataset(tmp_path / "data"), tags={"stage": "raw"})
    loose = keep.put(b"not in the tree")
    keep.store.put_inline([b'{"small": "inline"}'])

    first = keep.push("origin", [tree.digest])
    assert first.transferred == 32 and first.already == 0  # 31 files + the manifest
    assert keep.push("origin", [tree.digest]).transferred == 0  # the inventory knows
    everything = keep.push()  # the one remote is the default
    assert everything.transferred == 2  # the loose blob and the inline one
    assert keep.push().transferred == 0

    fresh = datakeep.init(tmp_path / "elsewhere")
    fresh.add_remote("origin", location, endpoint)
    pulled = fresh.pull("origin", [tree.digest])
    assert pulled.transferred == 32
    assert fresh.info(tree.digest).kind == "tree"
    # the small files arrive in packs of the keep's own, the large one as a file
    members = [e.digest for e in keep_tree(fresh, tree.digest) if e.digest is not None]
    keys = fresh.store.keys_of(members)
    assert len(members) == 31 and sum("#" in keys[d] for d in members) == 30
    fresh.export(tree.digest, tmp_path / "restored")
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert (tmp_path / "restored" / path.relative_to(tmp_path / "data")).read_bytes() == (
                path.read_bytes()
            )
    assert fresh.pull("origin", [tree.digest]).transferred == 0
    with pytest.raises(NotFound):
        fresh.get(loose.digest)
    assert fresh.verify_many().ok and fresh.fsck().ok
    fresh.close()


def test_a_corrupted_remote_object_is_refused_on_pull(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    location, endpoint = where("b")
    keep.add_remote("origin", location, endpoint)
    c = keep.put(b"the true bytes")
    keep.push("origin")
    assert "pack" in where_on_remote(keep, "origin", c.digest)  # small blobs travel packed
    spoil_on_remote(keep, "origin", c.digest)
    fresh = datakeep.init(tmp_path / "elsewhere")
    fresh.add_remote("origin", location, endpoint)
    with pytest.raises(IntegrityError, match="nothing was recorded"):
        fresh.pull("origin", [c.digest])
    assert not fresh.exists(c.digest)
    with pytest.raises(NotFound):
        fresh.pull("origin", [datakeep.digest.hash_bytes(b"never pushed")])
    fresh.close()


def test_remote_bookkeeping_and_bad_input(keep: Keep, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="none is configured"):
        keep.push()
    keep.add_remote("one", str(tmp_path / "r1"))
    keep.add_remote("two", str(tmp_path / "r2"))
    assert [r.name for r in keep.remotes] == ["one", "two"]
    with pytest.raises(InvalidInput, match="name the remote"):
        keep.push()
    with pytest.raises(AlreadyExists):
        keep.add_remote("one", str(tmp_path / "r3"))
    for bad in ("primary", "a/b", "", "x:y"):
        with pytest.raises(InvalidInput):
            keep.add_remote(bad, str(tmp_path / "r4"))
    with pytest.raises(NotFound, match="no remote named 'three'"):
        keep.push("three")
    keep.put(b"x")
    keep.push("one")
    keep.remove_remote("one")
    assert [r.name for r in keep.remotes] == ["two"]
    assert (tmp_path / "r1").exists()  # forgetting a remote deletes no bytes


def test_remote_commands(tmp_path: Path) -> None:
    run_cli("init", cwd=tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("pushed by the CLI")
    tree = run_cli("put", "d", cwd=tmp_path).stdout.split()[0].decode()
    run_cli("remote", "add", "nas", str(tmp_path / "nas"), cwd=tmp_path)
    assert b"nas\t" in run_cli("remote", "ls", cwd=tmp_path).stdout
    out = run_cli("push", tree, cwd=tmp_path).stdout.decode()  # NAME may be left out
    assert out.startswith("pushed 2 blob(s)")
    other = tmp_path / "other"
    other.mkdir()
    run_cli("init", cwd=other)
    run_cli("remote", "add", "nas", str(tmp_path / "nas"), cwd=other)
    assert run_cli("pull", "nas", tree, cwd=other).stdout.startswith(b"pulled 2 blob(s)")
    run_cli("get", tree, "restored", cwd=other)
    assert (other / "restored" / "f").read_text() == "pushed by the CLI"
    bad = run_cli("push", "nowhere", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and b"no remote named 'nowhere'" in bad.stderr


def test_reads_fall_back_to_a_mirror_and_say_so(keep: Keep, tmp_path: Path, where: Where) -> None:
    from .conftest import blob_path, damage

    location, endpoint = where("m")
    keep.add_remote("mirror", location, endpoint)
    gone = keep.put(b"the primary copy will vanish")
    bad = keep.put(b"the primary copy will rot")
    keep.push("mirror")
    blob_path(keep, gone.digest).unlink()
    damage(blob_path(keep, bad.digest), b"the primary copy WILL ROT")
    said: list[str] = []
    keep.on_fallback = said.append

    assert keep.get(gone.digest) == b"the primary copy will vanish"
    assert keep.get(bad.digest) == b"the primary copy will rot"
    with keep.open(gone.digest) as reader:
        assert reader.read() == b"the primary copy will vanish"
    keep.export(bad.digest, tmp_path / "restored.bin")
    assert (tmp_path / "restored.bin").read_bytes() == b"the primary copy will rot"
    assert len(said) == 4 and all("served from mirror 'mirror'" in m for m in said)
    assert "was not repaired" in said[0]
    # nothing was repaired behind the user's back: fsck still sees both problems
    report = keep.fsck()
    assert report.missing == [gone.digest] and [p.digest for p in report.corrupted] == [bad.digest]

    # a mirror whose copy is bad too is no help: the primary's error stands
    spoil_on_remote(keep, "mirror", bad.digest)
    with pytest.raises(IntegrityError):
        keep.get(bad.digest)


def test_verify_remote_checks_the_inventory(keep: Keep, tmp_path: Path, where: Where) -> None:
    location, endpoint = where("v")
    keep.add_remote("backup", location, endpoint)
    a, b, c = (keep.put(f"blob {i}".encode() * 100) for i in range(3))
    keep.push("backup")
    assert keep.verify_remote("backup").ok and keep.verify_remote("backup", rehash=True).ok
    spoil_on_remote(keep, "backup", b.digest)  # same size, other bytes
    assert keep.verify_remote("backup").ok  # sizes alone cannot tell
    full = keep.verify_remote("backup", rehash=True)
    assert [p.digest for p in full.problems] == [b.digest] and full.checked == 3
    # what verify found bad is dropped from the inventory: b is no longer checked
    pack = str(where_on_remote(keep, "backup", a.digest)["pack"])
    keep.remotes[0].open().delete(pack)
    gone = keep.verify_remote("backup")
    assert sorted(p.digest for p in gone.problems) == sorted([a.digest, c.digest])
    assert all("missing from remote backup" in p.error for p in gone.problems)
    assert gone.checked == 2


def test_verify_remote_command(tmp_path: Path) -> None:
    run_cli("init", cwd=tmp_path)
    (tmp_path / "f").write_text("to check")
    run_cli("put", "f", cwd=tmp_path)
    run_cli("remote", "add", "nas", str(tmp_path / "nas"), cwd=tmp_path)
    run_cli("push", cwd=tmp_path)
    ok = run_cli("verify", "--remote", "nas", "--rehash", cwd=tmp_path)
    assert ok.stdout.startswith(b"ok: 1 contents")
    for path in (tmp_path / "nas").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            path.unlink()
    bad = run_cli("verify", "--remote", "nas", cwd=tmp_path, check=False)
    assert bad.returncode == 3 and b"missing from remote nas" in bad.stdout


def test_a_truncated_download_records_nothing(keep: Keep, tmp_path: Path, where: Where) -> None:
    location, endpoint = where("t")
    keep.add_remote("origin", location, endpoint)
    small = keep.put(b"packed and then cut short" * 10)
    large = keep.put(bytes(range(256)) * 8192)  # 2 MiB: an object of its own
    keep.push("origin")
    backend = keep.remotes[0].open()
    for digest in (small.digest, large.digest):
        pointer = where_on_remote(keep, "origin", digest)
        key = str(pointer.get("pack") or pointer["key"])
        data = backend.read(key)
        backend.delete(key)
        cut = int(str(pointer.get("offset", 0))) + 10 if "pack" in pointer else len(data) // 2
        backend.create(key, data[:cut])
    fresh = datakeep.init(tmp_path / "elsewhere")
    fresh.add_remote("origin", location, endpoint)
    # the cut pack fails its trailer check; the cut object fails its digest check
    for digest in (small.digest, large.digest):
        with pytest.raises(IntegrityError, match="nothing was recorded"):
            fresh.pull("origin", [digest])
        assert not fresh.exists(digest)
    assert fresh.fsck().ok
    fresh.close()


def test_tree_export_takes_bad_files_from_a_mirror(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    from .conftest import blob_path, damage, damage_packed

    location, endpoint = where("e")
    keep.add_remote("mirror", location, endpoint)
    tree = keep.put_tree(dataset(tmp_path / "data"))
    keep.push("mirror", [tree.digest])
    entries = {e.path: e.digest for e in keep_tree(keep, tree.digest)}
    damage_packed(keep, entries["sub/f03"], b"?" * len(b"small file 3" * 4))
    damage(blob_path(keep, entries["large.bin"]), b"rotten")
    said: list[str] = []
    keep.on_fallback = said.append
    keep.export(tree.digest, tmp_path / "restored")
    for name in ("sub/f03", "large.bin", "sub/f29"):
        assert (tmp_path / "restored" / name).read_bytes() == (
            tmp_path / "data" / name
        ).read_bytes()
    assert len(said) == 2
    keep.remove_remote("mirror")  # without the mirror, the export fails, all or nothing
    with pytest.raises((NotFound, IntegrityError)):
        keep.export(tree.digest, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def keep_tree(keep: Keep, digest: str) -> list[datakeep.trees.TreeEntry]:
    from datakeep.trees import decode_tree

    return decode_tree(keep.get(digest), keep.algorithm)


def _empty(keep: Keep, remote: str) -> None:
    """What a bucket emptied behind the keep's back, or a server restarted empty, leaves."""
    backend = next(r for r in keep.remotes if r.name == remote).open()
    for info in list(backend.list("")):
        backend.delete(info.key)


def test_a_remote_that_lost_blobs_is_noticed_and_refilled(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    keep.add_remote("r", *where("lost"))
    tree = keep.put_tree(dataset(tmp_path / "data"))
    loose = keep.put(b"a loose blob" * 1000)
    first = keep.push("r")
    _empty(keep, "r")
    assert keep.push("r").transferred == 0  # the inventory still believes
    report = keep.verify_remote("r")
    assert len(report.problems) == first.transferred
    assert all("the next push sends it again" in p.error for p in report.problems)
    assert keep.push("r").transferred == first.transferred
    assert keep.verify_remote("r", rehash=True).ok

    _empty(keep, "r")
    assert keep.push("r", verify=True).transferred == first.transferred  # no verify first
    fresh = datakeep.init(tmp_path / "elsewhere")
    fresh.add_remote("r", *next((r.location, r.config.get("endpoint")) for r in keep.remotes))
    fresh.pull("r", [tree.digest, loose.digest])
    assert fresh.verify_many().ok and fresh.get(loose.digest) == b"a loose blob" * 1000
    fresh.close()


def test_an_interrupted_push_then_an_emptied_remote_end_complete(
    keep: Keep, tmp_path: Path, where: Where
) -> None:
    keep.add_remote("r", *where("cut"))
    for i in range(6):
        keep.put(bytes([i]) * (2 << 20))  # one object each
    seen: list[object] = []

    def cut(progress: object) -> None:
        seen.append(progress)
        if len(seen) == 3:
            raise datakeep.StorageError("the endpoint went away mid-push")

    with pytest.raises(datakeep.StorageError):
        keep.push("r", progress=cut)
    _empty(keep, "r")  # and came back empty
    keep.push("r")  # what was never recorded
    keep.verify_remote("r")  # what was recorded but lost: forgotten
    keep.push("r")
    final = keep.verify_remote("r", rehash=True)
    assert final.ok and final.checked == 6


def test_push_verify_command(tmp_path: Path) -> None:
    run_cli("init", cwd=tmp_path)
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    run_cli("put", "f", cwd=tmp_path)
    run_cli("remote", "add", "r", str(tmp_path / "remote"), cwd=tmp_path)
    run_cli("push", "r", cwd=tmp_path)
    for path in (tmp_path / "remote").rglob("*"):
        if path.is_file():
            path.unlink()
    assert b"pushed 0 blob(s)" in run_cli("push", "r", cwd=tmp_path).stdout
    assert b"pushed 1 blob(s)" in run_cli("push", "r", "--verify", cwd=tmp_path).stdout


class _MotoProcess:
    """An S3 endpoint in a process of its own, on a fixed port, that can be killed and
    started again empty."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, bucket: str) -> None:
        import socket

        import boto3

        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.025)
        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def test_an_endpoint_killed_mid_push_and_restarted_empty_ends_complete(
    keep: Keep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = _MotoProcess()
    server.start("lab")
    try:
        keep.add_remote("r", "s3://lab/keep", server.url)
        for i in range(8):
            keep.put(bytes([i]) * (2 << 20))  # one object each
        done: list[object] = []

        def crash_once(progress: object) -> None:
            done.append(progress)
            if len(done) == 3:  # three blobs are recorded as pushed: then the server dies
                server.kill()
                server.start("lab")  # and comes back with nothing

        with contextlib.suppress(datakeep.StorageError):
            keep.push("r", progress=crash_once)
        keep.push("r")
        lost = keep.verify_remote("r")  # what the dead server took along is forgotten
        assert len(lost.problems) >= 3
        assert keep.push("r").transferred == len(lost.problems)  # and sent again
        final = keep.verify_remote("r", rehash=True)
        assert final.ok and final.checked == 8
    finally:
        server.kill()
