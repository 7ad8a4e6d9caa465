"""fsck, gc and pins, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, update

import datakeep
from datakeep.content import PACKED_MAX
from datakeep.content.packs import pack_member
from datakeep.digest import hash_bytes
from datakeep.errors import Busy, IntegrityError, NotFound
from datakeep.index import contents
from datakeep.index import engine as engine_module
from datakeep.keep import Keep
from datakeep.maintenance import roots as roots_module
from datakeep.maintenance.gc import QUARANTINE
from datakeep.trees import TreeEntry, decode_tree

from .conftest import blob_path, damage, damage_packed, init_args, run_cli


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def age(keep: Keep, digests: Iterable[str], seconds: float = 10 * 86400) -> None:
    """Pretend these contents were stored ``seconds`` ago."""
    with keep.db.write() as conn:
        conn.execute(
            update(contents)
            .where(contents.c.digest.in_(list(digests)))
            .values(created_at=time.time() - seconds)
        )


def forget_row(keep: Keep, digest: str) -> None:
    """Delete an index row behind datakeep's back (its blob stays: an orphan)."""
    with keep.db.write() as conn:
        conn.execute(delete(contents).where(contents.c.digest == digest))


# -- fsck --------------------------------------------------------------------------------
def test_fsck_of_a_healthy_keep(keep: Keep, tmp_path: Path) -> None:
    keep.put(b"one")
    tree = keep.put_tree(make_tree(tmp_path / "d", {"a": b"alpha", "b/c": b"gamma" * 1000}))
    report = keep.fsck()
    assert report.ok and report.orphans == [] and report.repairs == []
    assert report.checked == 4  # one, alpha, gamma..., the tree
    assert report.nbytes == 3 + 5 + 5000 + keep.info(tree.digest).size


def test_fsck_finds_every_kind_of_problem_and_repair_records_the_truth(
    keep: Keep, tmp_path: Path
) -> None:
    gone = keep.put(b"its blob will vanish")
    bad = keep.put(b"its blob will be altered")
    blob_path(keep, gone.digest).unlink()
    damage(blob_path(keep, bad.digest), b"its blob WAS altered!!!!")
    # files of their own (too large for a pack): their blobs can vanish one by one
    files = {name: name.encode() * PACKED_MAX for name in ("kept", "lost", "re")}
    tree = keep.put_tree(make_tree(tmp_path / "d", files))
    members = {e.path: e.digest for e in keep_tree_entries(keep, tree.digest)}
    # "lost": row and blob gone; "re": row gone, blob left behind (an orphan)
    blob_path(keep, members["lost"]).unlink()
    forget_row(keep, members["lost"])
    forget_row(keep, members["re"])
    keep.store.backend.create("junk/not-a-digest", b"junk")

    report = keep.fsck()
    assert not report.ok
    assert report.missing == [gone.digest]
    assert [p.digest for p in report.corrupted] == [bad.digest]
    assert "corrupted" in report.corrupted[0].error
    assert sorted((d.path, d.digest) for d in report.dangling) == sorted(
        [("lost", members["lost"]), ("re", members["re"])]
    )
    assert sorted(k for k, _ in report.orphans) == sorted(
        ["junk/not-a-digest", keep.store.router(members["re"], {})]
    )
    assert report.repairs == []
    assert keep.exists(gone.digest)  # fsck alone changes nothing

    repaired = keep.fsck(repair_index=True)
    assert len(repaired.repairs) == 4  # forget x2, quarantine x1, adopt x1
    assert [k for k, _ in repaired.orphans] == ["junk/not-a-digest"]  # bytes never deleted
    assert [(d.path, d.digest) for d in repaired.dangling] == [("lost", members["lost"])]
    assert not keep.exists(gone.digest) and not keep.exists(bad.digest)
    assert keep.get(members["re"]) == files["re"]  # the orphan was adopted
    key = keep.store.router(bad.digest, {})
    assert keep.store.backend.read(QUARANTINE + key) == b"its blob WAS altered!!!!"

    after = keep.fsck()
    assert after.missing == [] and after.corrupted == []
    # re-putting what was lost stores it again, verified
    assert keep.put(b"its blob will be altered").digest == bad.digest
    assert keep.put(files["lost"]).digest == members["lost"]
    final = keep.fsck()
    assert final.ok, final
    assert [k for k, _ in final.orphans] == ["junk/not-a-digest"]


def keep_tree_entries(keep: Keep, digest: str) -> list[TreeEntry]:
    return decode_tree(keep.get(digest), keep.algorithm)


def test_fsck_command_exit_code_and_json(tmp_path: Path, index_url: str | None) -> None:
    run_cli("init", *init_args(index_url), cwd=tmp_path)
    (tmp_path / "f").write_bytes(b"checked by the command line")
    digest = run_cli("put", "f", cwd=tmp_path).stdout.split()[0].decode()
    clean = run_cli("fsck", "--json", cwd=tmp_path)
    assert json.loads(clean.stdout)["ok"] is True
    from datakeep import open as open_keep

    with open_keep(tmp_path) as keep:
        blob_path(keep, digest).unlink()
    broken = run_cli("fsck", cwd=tmp_path, check=False)
    assert broken.returncode == 3
    assert f"MISSING {digest}" in broken.stdout.decode()
    assert "1 problem(s)" in broken.stderr.decode()
    repaired = run_cli("fsck", "--repair-index", "--json", cwd=tmp_path, check=False)
    assert repaired.returncode == 3  # problems were found, then repaired
    assert json.loads(repaired.stdout)["repairs"]
    assert run_cli("fsck", cwd=tmp_path).returncode == 0


# -- gc ----------------------------------------------------------------------------------
def test_gc_keeps_roots_and_what_trees_name_and_sweeps_the_rest(keep: Keep, tmp_path: Path) -> None:
    tagged = keep.put(b"tagged", tags={"stage": "raw"})
    pinned = keep.put(b"pinned")
    keep.pin(pinned.digest, note="results")
    loose = keep.put(b"loose, nothing refers to it")
    young = keep.put(b"young and loose")
    kept_tree = keep.put_tree(make_tree(tmp_path / "k", {"x": b"in a pinned tree"}))
    keep.pin(kept_tree.digest)
    dropped_tree = keep.put_tree(make_tree(tmp_path / "g", {"y": b"in a loose tree"}))
    dropped_member = keep_tree_entries(keep, dropped_tree.digest)[0].digest
    everything_old = [c.digest for c in keep.store.iter_all() if c.digest != young.digest]
    age(keep, everything_old)
    keep.store.backend.create("blake3/00/orphan", b"crash leftover")
    orphan_path = keep.store.files.path_of("blake3/00/orphan")  # type: ignore[union-attr]

    dry = keep.gc(grace_s=3600, dry_run=True)
    assert sorted(dry.swept) == sorted([loose.digest, dropped_tree.digest, dropped_member])
    assert dry.young == 1 and dry.orphans == []  # the orphan is younger than the grace
    assert keep.exists(loose.digest) and orphan_path.exists()  # a dry run removes nothing

    report = keep.gc(grace_s=3600)
    assert sorted(report.swept) == sorted(dry.swept)
    assert report.swept_bytes == sum(
        (len(b"loose, nothing refers to it"), len(b"in a loose tree"), dropped_tree.size)
    )
    assert report.roots["pins"] == 2 and report.roots["tags"] == 1
    for digest in (loose.digest, dropped_tree.digest, dropped_member):
        assert not keep.exists(digest)
        with pytest.raises(NotFound):
            keep.get(digest)
    for c in (tagged, pinned, young, kept_tree):
        assert keep.exists(c.digest)
    keep.export(kept_tree.digest, tmp_path / "restored")
    assert (tmp_path / "restored" / "x").read_bytes() == b"in a pinned tree"

    # the orphan goes once it is older than the grace; the blobs of swept rows are gone
    swept_orphans = keep.gc(grace_s=0)
    assert "blake3/00/orphan" in swept_orphans.orphans and not orphan_path.exists()
    assert keep.fsck().ok and keep.fsck().orphans == []


def test_unpinned_content_is_swept(keep: Keep) -> None:
    c = keep.put(b"pinned for a while")
    keep.pin(c.digest)
    assert keep.pins() == [c.digest]
    assert keep.gc(grace_s=0).swept == []
    assert keep.unpin(c.digest) is True and keep.unpin(c.digest) is False
    assert keep.gc(grace_s=0).swept == [c.digest]
    with pytest.raises(NotFound):
        keep.pin(c.digest)


def test_registered_root_provider_keeps_its_digests(
    keep: Keep, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = keep.put(b"a feature still needs this")
    monkeypatch.setattr(roots_module, "_registered", {})

    class FeatureRoots:
        name = "feature"

        def live_digests(self, conn: Connection) -> list[str]:
            return [needed.digest]

    roots_module.register_roots(FeatureRoots())
    report = keep.gc(grace_s=0)
    assert report.roots["feature"] == 1 and report.swept == []
    assert keep.get(needed.digest) == b"a feature still needs this"


def pack_of(keep: Keep, digest: str) -> str:
    member = pack_member(keep.store.key_of(digest))
    assert member is not None, f"{digest} is not in a pack"
    return member.pack


def packed_tree(keep: Keep, root: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Put a tree of small files (one pack); the digest of each file, by name."""
    tree = keep.put_tree(make_tree(root, files))
    named = {e.path: e.digest for e in keep_tree_entries(keep, tree.digest)}
    assert len({pack_of(keep, d) for d in named.values()}) == 1
    age(keep, [tree.digest, *named.values()])
    return named


@pytest.mark.parametrize(
    ("pinned", "outcome"),
    [
        ([], "deleted"),  # nothing of the pack is live
        (["small"], "rewritten"),  # 1 KB live, 10 KB dead
        (["large"], "kept"),  # 10 KB live, 1 KB dead: left for a later gc
    ],
)
def test_gc_deletes_rewrites_or_keeps_a_pack_by_what_is_live_in_it(
    keep: Keep, tmp_path: Path, pinned: list[str], outcome: str
) -> None:
    files = {"small": b"s" * 1000, "large": b"L" * 10_000}
    named = packed_tree(keep, tmp_path / "d", files)
    pack = pack_of(keep, named["small"])
    for name in pinned:
        keep.pin(named[name])

    dry = keep.gc(grace_s=3600, dry_run=True)
    assert keep.store.backend.head(pack).size > 0  # a dry run touches nothing
    report = keep.gc(grace_s=3600)
    assert (report.repacked, report.retained_bytes) == (dry.repacked, dry.retained_bytes)
    dead = sum(len(files[n]) for n in files if n not in pinned)
    assert report.repacked == ([] if outcome == "kept" else [pack])
    assert report.retained_bytes == (dead if outcome == "kept" else 0)
    assert report.reclaimed_bytes == report.swept_bytes - report.retained_bytes
    if outcome == "kept":
        assert pack_of(keep, named["large"]) == pack
    else:
        with pytest.raises(NotFound):
            keep.store.backend.head(pack)
    for name, data in files.items():
        if name in pinned:
            assert keep.get(named[name]) == data
            assert outcome == "kept" or pack_of(keep, named[name]) != pack
        else:
            assert not keep.exists(named[name])
    if outcome == "rewritten":  # the new pack holds the live member only
        assert keep.store.backend.head(pack_of(keep, named["small"])).size < 1200
    after = keep.fsck()
    assert after.ok and after.orphans == []


def test_gc_leaves_a_pack_alone_when_a_live_member_fails_its_check(
    keep: Keep, tmp_path: Path
) -> None:
    named = packed_tree(keep, tmp_path / "d", {"live": b"l" * 1000, "dead": b"d" * 10_000})
    pack = pack_of(keep, named["live"])
    keep.pin(named["live"])
    damage_packed(keep, named["live"], b"X" * 1000)
    report = keep.gc(grace_s=3600)
    assert named["dead"] in report.swept and named["live"] not in report.swept
    assert report.repacked == []
    assert report.retained_bytes == 10_000  # not rewritten: the bad bytes are not copied
    assert pack_of(keep, named["live"]) == pack
    assert [p.digest for p in keep.fsck().corrupted] == [named["live"]]


def test_fsck_repairs_packed_contents_without_losing_their_neighbours(
    keep: Keep, tmp_path: Path
) -> None:
    files = {"bad": b"b" * 100, "forgotten": b"f" * 100, "fine": b"g" * 100}
    named = packed_tree(keep, tmp_path / "d", files)
    pack = pack_of(keep, named["bad"])
    damage_packed(keep, named["bad"], b"x" * 100)
    forget_row(keep, named["forgotten"])
    alone = packed_tree(keep, tmp_path / "e", {"alone": b"only member"})
    forget_row(keep, alone["alone"])  # its pack is now named by no row: an orphan

    report = keep.fsck()
    assert [p.digest for p in report.corrupted] == [named["bad"]]
    assert [k for k, _ in report.orphans] == [pack_of_key(keep, b"only member")]
    repaired = keep.fsck(repair_index=True)
    assert repaired.forgotten == [named["bad"]]
    assert keep.store.backend.read(QUARANTINE + keep.store.router(named["bad"], {})) == b"x" * 100
    # the pack stays for its other members; forgotten members are recorded again from
    # the packs' own tables; nothing is an orphan any more
    assert keep.get(named["fine"]) == files["fine"]
    assert keep.get(named["forgotten"]) == files["forgotten"]
    assert keep.get(alone["alone"]) == b"only member"
    assert pack_of(keep, named["forgotten"]) == pack and repaired.orphans == []
    assert not keep.exists(named["bad"])
    keep.put_tree(tmp_path / "d")  # the stat cache must not vouch for the forgotten one
    assert keep.get(named["bad"]) == files["bad"]
    final = keep.fsck()
    assert final.ok and final.orphans == []


def pack_of_key(keep: Keep, data: bytes) -> str:
    """The pack holding ``data``, found by reading the packs (its row may be gone)."""
    for key in keep.store.files.keys("packs/"):  # type: ignore[union-attr]
        if data in keep.store.backend.read(key):
            return key
    raise AssertionError("in no pack")


def test_gc_refuses_to_guess_when_a_live_tree_is_unreadable(keep: Keep, tmp_path: Path) -> None:
    tree = keep.put_tree(make_tree(tmp_path / "d", {"f": b"member"}), tags={"keep": "yes"})
    loose = keep.put(b"loose")
    damage(blob_path(keep, tree.digest), b"datakeep.tree@v1\nnot a tree")
    with pytest.raises(IntegrityError, match="nothing removed"):
        keep.gc(grace_s=0)
    assert keep.exists(loose.digest)


def test_gc_command(tmp_path: Path, index_url: str | None) -> None:
    run_cli("init", *init_args(index_url), cwd=tmp_path)
    (tmp_path / "f").write_bytes(b"to be collected")
    run_cli("put", "f", cwd=tmp_path)
    young = run_cli("gc", "--json", cwd=tmp_path)
    assert json.loads(young.stdout)["young"] == 1
    dry = run_cli("gc", "--dry-run", "--grace", "0s", cwd=tmp_path).stdout.decode()
    assert dry.startswith("would remove 1 content(s) (15 B)")
    done = run_cli("gc", "--grace", "0", cwd=tmp_path).stdout.decode()
    assert done.startswith("removed 1 content(s) (15 B)")
    bad = run_cli("gc", "--grace", "soon", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and b"not a duration" in bad.stderr


def test_gc_removes_temporary_files_that_killed_writes_left(keep: Keep, tmp_path: Path) -> None:
    temp_dir = keep.path / "objects" / ".tmp"
    dead = temp_dir / "killed-1"
    dead.write_bytes(b"x" * 100)
    two_days_ago = time.time() - 2 * 86400
    os.utime(dead, (two_days_ago, two_days_ago))
    in_flight = temp_dir / "writing-1"  # written just now: a write may still publish it
    in_flight.write_bytes(b"y" * 10)
    kept = keep.put(b"kept", tags={"k": "v"})

    dry = keep.gc(dry_run=True)
    assert (dry.temp_files, dry.temp_bytes) == (["killed-1"], 100)
    assert dead.exists()
    report = keep.gc()
    assert (report.temp_files, report.temp_bytes) == (["killed-1"], 100)
    assert report.reclaimed_bytes == 100
    assert not dead.exists() and in_flight.exists()
    assert keep.get(kept.digest) == b"kept"
    later = run_cli("gc", "--json", cwd=keep.path.parent)
    assert json.loads(later.stdout)["temp_files"] == []


def test_gc_while_writers_are_active_never_removes_what_they_keep(keep: Keep) -> None:
    pool = [f"shared content {i}".encode() for i in range(20)]
    stop = threading.Event()
    failures: list[BaseException] = []
    kept: list[str] = []

    def writer(n: int) -> None:
        try:
            i = 0
            while not stop.is_set():
                data = pool[(i * 7 + n) % len(pool)]
                keep.put(data)  # untagged: garbage for the collector
                c = keep.put(data, tags={"writer": str(n)})  # tagged: live from here on
                assert keep.get(c.digest) == data
                kept.append(c.digest)
                if i % 3 == 0:
                    keep.untag(c.digest, "writer")  # garbage again (maybe tagged by others)
                i += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    sweeps = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        sweeps += len(keep.gc(grace_s=0).swept)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert sweeps > 0, "gc should have had garbage to sweep while the writers ran"
    report = keep.fsck()
    assert report.ok and report.orphans == []
    for content in keep.find(limit=1000).items:
        if content.tags:
            assert keep.get(content.digest) in pool


def test_gc_leaves_no_dangling_rows_after_sweeping_trees(keep: Keep, tmp_path: Path) -> None:
    tree = keep.put_tree(make_tree(tmp_path / "d", {f"f{i}": bytes([i]) * 10 for i in range(5)}))
    report = keep.gc(grace_s=0)
    assert len(report.swept) == 6 and report.swept[0] == tree.digest  # the tree first
    assert keep.fsck().ok


def test_puts_wait_for_gc_and_give_up_with_busy(
    keep: Keep, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, release = threading.Event(), threading.Event()

    def collector() -> None:
        with keep.store.leases.exclusive():  # what gc holds while it sweeps
            held.set()
            release.wait(10)

    thread = threading.Thread(target=collector)
    thread.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    c = keep.put(b"waited for gc")
    assert time.monotonic() - started >= 0.4
    assert keep.get(c.digest) == b"waited for gc"
    thread.join()

    # a put that would wait longer than the lock timeout gives up, recording nothing
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_S", 0.3)
    release.clear()
    held.clear()
    thread = threading.Thread(target=collector)
    thread.start()
    held.wait(10)
    try:
        with datakeep.open(keep.path) as impatient, pytest.raises(Busy):
            impatient.put(b"gave up")
    finally:
        release.set()
        thread.join()
    assert not keep.exists(hash_bytes(b"gave up"))


def test_reput_after_repair_stores_what_was_forgotten(keep: Keep, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"model.bin": b"weights" * 1000, "notes": b"n"})
    tree = keep.put_tree(data)
    time.sleep(0.01)
    member = {e.path: e.digest for e in keep_tree_entries(keep, tree.digest)}["model.bin"]
    damage_packed(keep, member, b"rotten!" * 1000)
    report = keep.fsck(repair_index=True)
    assert report.forgotten == [member]
    assert [d.digest for d in keep.fsck().dangling] == [member]
    # the files did not change, but the stat cache must not vouch for what was forgotten
    assert keep.put_tree(data).digest == tree.digest
    assert keep.get(member) == b"weights" * 1000
    assert keep.fsck().ok
