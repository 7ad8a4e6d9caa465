"""Record directories: identity, safe files, commit to the keep with mirrors, relations,
find, reindex; on SQLite and PostgreSQL, with a directory and an S3 mirror."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select, update

import datakeep
from datakeep.errors import IntegrityError, InvalidInput, NotFound
from datakeep.keep import Keep
from datakeep.records import (
    AsyncRecordStore,
    IndexCollision,
    RecordStore,
    UnsafePath,
    canonical_json,
    identity_of,
)
from datakeep.records.schema import records as record_rows
from datakeep.records.schema import relations

from .conftest import Where, blob_path, damage


@pytest.fixture
def store(keep: Keep) -> RecordStore:
    return RecordStore(keep)


def test_canonical_json_is_pinned() -> None:
    assert canonical_json({"b": 1, "a": [1.0, -0.0, "é", None, True]}) == (
        '{"a":[1.0,0.0,"é",null,true],"b":1}'
    )
    assert canonical_json({"x": 1e100, "y": 0.1, "z": 2**70}) == (
        '{"x":1e+100,"y":0.1,"z":1180591620717411303424}'
    )
    assert canonical_json({"t": (1, 2), "s": '\u2028\n"\\'}) == '{"s":"\u2028\\n\\"\\\\","t":[1,2]}'
    # pinned digests: a change of profile changes every identity, so it must be deliberate
    assert identity_of("train", {"lr": 0.1}) == identity_of("train", {"lr": 0.1})
    assert identity_of("train", {"lr": 1}) != identity_of("train", {"lr": 1.0})
    assert identity_of("train", {}) == (
        "blake3:" + __import__("blake3").blake3(b'{"config":{},"kind":"train"}').hexdigest()
    )
    for bad in ({"x": float("nan")}, {1: "int key"}, {"x": object()}):
        with pytest.raises(InvalidInput):
            canonical_json(bad)


def test_create_is_idempotent_and_collisions_are_refused(store: RecordStore) -> None:
    a = store.create("train", {"lr": 0.1, "model": {"depth": 4}})
    assert store.create("train", {"model": {"depth": 4}, "lr": 0.1}) == a
    assert store.create("train", {"lr": 0.1, "model": {"depth": 4}}, predicate="seed=2") != a
    child = store.create("eval", {}, parent=a)
    assert store.get(child).parent == a
    with store.db.write() as conn:  # the same identity, another config: a collision
        conn.execute(update(record_rows).where(record_rows.c.uuid == a).values(config={"lr": 9}))
    with pytest.raises(IndexCollision):
        store.create("train", {"lr": 0.1, "model": {"depth": 4}})
    assert store.resolve(a[:6]) == a
    with pytest.raises(NotFound):
        store.resolve("ffffffff")
    with pytest.raises(InvalidInput):
        store.resolve("ab")


def test_sixteen_threads_make_one_record(store: RecordStore) -> None:
    made: list[str] = []

    def create() -> None:
        made.append(store.create("sweep", {"point": 7}))

    threads = [threading.Thread(target=create) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 16 and len(set(made)) == 1
    assert len(list(store.walk())) == 1
    # one thread wrote the header files in place while others completed the same directory
    header = json.loads((store.directory(made[0]) / "id.json").read_text())
    assert header["uuid"] == made[0] and store.load_file(made[0], "absent", None) is None


def _create_in(path: str, queue: multiprocessing.Queue[str]) -> None:
    with RecordStore.open(path) as store:
        queue.put(store.create("sweep", {"point": 7}))


def test_processes_make_one_record_on_a_new_keep(tmp_path: Path, index_url: str | None) -> None:
    datakeep.init(tmp_path / "lab", index=index_url).close()
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_create_in, args=(str(tmp_path / "lab"), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len({queue.get() for _ in range(4)}) == 1


def test_files_by_extension_and_never_pickle(store: RecordStore) -> None:
    run = store.create("train", {})
    store.save_file(run, "config/params.json", {"lr": 0.1, "name": "é"})
    store.save_file(run, "metrics.jsonl", {"step": 1})
    store.save_file(run, "metrics.jsonl", {"step": 2})
    store.save_file(run, "weights.npy", np.arange(6).reshape(2, 3))
    store.save_file(run, "notes.md", "# run")
    store.save_file(run, "raw.bin", b"\x00\x01")
    assert store.load_file(run, "config/params.json") == {"lr": 0.1, "name": "é"}
    assert store.load_file(run, "metrics.jsonl") == [{"step": 1}, {"step": 2}]
    assert store.load_file(run, "weights.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert store.load_file(run, "notes.md") == "# run"
    assert store.load_file(run, "raw.bin") == b"\x00\x01"
    assert store.load_file(run, "absent.json", default=None) is None
    with pytest.raises(NotFound):
        store.load_file(run, "absent.json")
    with pytest.raises(InvalidInput, match="pickles"):
        store.save_file(run, "model.pkl", b"x")
    (store.directory(run) / "planted.p").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(InvalidInput, match="pickles"):
        store.load_file(run, "planted.p")
    (store.directory(run) / "cut.json").write_text('{"lr": 0.')
    with pytest.raises(IntegrityError, match="truncated or corrupt"):
        store.load_file(run, "cut.json", default="not this")
    (store.directory(run) / "cut.jsonl").write_text('{"step": 1}\n{"step"')
    with pytest.raises(IntegrityError):
        store.load_file(run, "cut.jsonl", default=[])


def test_paths_cannot_leave_the_record(store: RecordStore, tmp_path: Path) -> None:
    run = store.create("train", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.directory(run) / "escape").symlink_to(outside)
    for relpath in ("../x", "/etc/passwd", "a/../../x", "a\x00b", "escape/x", "id.json", ""):
        with pytest.raises(UnsafePath):
            store.save_file(run, relpath, b"never written")
    for bad_id in ("../../x", "/tmp", "a" * 32 + "/.."):
        with pytest.raises(InvalidInput):
            store.save_file(bad_id, "f.txt", "never written")
    assert list(outside.iterdir()) == []
    assert not (store.directory(run).parent / "x").exists()
    assert json.loads((store.directory(run) / "id.json").read_text())["uuid"] == run


def test_links_on_the_way_are_followed_only_inside(store: RecordStore, tmp_path: Path) -> None:
    run = store.create("train", {})
    root = store.directory(run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("theirs")
    (root / "gone").symlink_to(outside / "new")  # dangling: a save would make it outside
    (root / "away").symlink_to(outside)
    (root / "sub").mkdir()
    (root / "here").symlink_to("sub")  # a link that stays inside is fine
    for relpath in ("gone/x.txt", "gone/deeper/x.txt", "away/x.txt", "away/secret.txt"):
        with pytest.raises(UnsafePath):
            store.save_file(run, relpath, "never written")
        with pytest.raises(UnsafePath):
            store.load_file(run, relpath, None)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    store.save_file(run, "here/a/b.txt", "inside")
    assert (root / "sub" / "a" / "b.txt").read_text() == "inside"
    assert store.load_file(run, "here/a/b.txt") == "inside"


def test_a_directory_without_its_sentinel_is_completed_again(store: RecordStore) -> None:
    """Header files are written in place, the sentinel last: a crash between them leaves a
    directory that is not taken for a record, and the next use rewrites every header."""
    run = store.create("train", {"lr": 0.1}, label="base")
    root = store.directory(run)
    whole = {name: (root / name).read_bytes() for name in ("id.json", "model.json")}
    (root / ".datakeep-record").unlink()
    (root / "id.json").write_bytes(whole["id.json"][:10])  # cut short by the crash
    (root / "model.json").unlink()
    store.save_file(run, "a.txt", "x")
    assert {name: (root / name).read_bytes() for name in whole} == whole
    assert (root / ".datakeep-record").read_text() == "datakeep.record@v1\n"
    # another store (as another process would) sees the same complete directory
    assert RecordStore(store.keep).load_file(run, "a.txt") == "x"


def test_commit_retrieve_and_mirrors(store: RecordStore, tmp_path: Path, where: Where) -> None:
    store.keep.add_remote("mirror", *where("m"))
    run = store.create("train", {"lr": 0.1})
    store.save_file(run, "result.json", {"acc": 0.9})
    store.save_file(run, "big.bin", bytes(range(256)) * 8000)
    tree = store.commit(run)
    assert store.get(run).tree == tree and store.get(run).updated_at is not None
    assert store.keep.push("mirror").transferred == 0  # the commit sent it already

    # a damaged file in the home copy: the mirror's verified copy is returned instead
    big = {e.path: e.digest for e in datakeep.trees.decode_tree(store.keep.get(tree))}["big.bin"]
    damage(blob_path(store.keep, big), b"x" * (256 * 8000))
    out = store.retrieve(run, tmp_path / "out")
    assert (out / "big.bin").read_bytes() == bytes(range(256)) * 8000
    assert json.loads((out / "result.json").read_text()) == {"acc": 0.9}
    assert not store.verify().ok  # the home copy is still damaged, and verify says so
    store.keep.pull("mirror", [tree])
    assert store.verify().ok

    # a working copy made again from the committed version
    store.save_file(run, "result.json", {"acc": 0.1})
    again = store.fetch(run, force=True)
    assert json.loads((again / "result.json").read_text()) == {"acc": 0.9}


def test_a_failed_commit_leaves_the_record_on_a_stored_tree(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = store.create("train", {})
    store.save_file(run, "a.json", 1)
    first = store.commit(run)
    store.save_file(run, "a.json", 2)

    def fail(*args: object, **kwargs: object) -> None:
        raise datakeep.IndexFailure("simulated crash before the record is pointed at it")

    monkeypatch.setattr(store.db, "transact", fail)
    with pytest.raises(datakeep.IndexFailure):
        store.commit(run)
    monkeypatch.undo()
    assert store.get(run).tree == first and store.keep.verify(first).digest == first


def test_commit_stores_the_tree_a_full_put_makes(store: RecordStore) -> None:
    run = store.create("train", {"lr": 0.1})
    store.save_file(run, "a/b.json", {"x": 1})
    store.save_file(run, "m.jsonl", {"step": 1})
    tree = store.commit(run)  # small: recorded inline, without a put
    assert store.keep.put_tree(store.directory(run)).digest == tree


def test_commit_of_a_record_gone_from_the_catalog_records_nothing(store: RecordStore) -> None:
    run = store.create("train", {})
    store.commit(run)
    with store.db.write() as conn:  # deleted by another process; its directory is still here
        conn.execute(delete(record_rows).where(record_rows.c.uuid == run))
    with pytest.raises(NotFound):
        store.commit(run)
    assert not store.contains(run)


def test_relations_travel_and_reindex_rebuilds_the_catalog(store: RecordStore) -> None:
    train = store.create("train", {"lr": 0.1}, label="baseline")
    evals = [store.create("eval", {"split": s}, parent=train) for s in ("val", "test")]
    for e in evals:
        store.relate("evaluates", e, train)
        store.relate("evaluates", e, train)  # idempotent
        store.mark(e, "started")
        store.commit(e)
    store.commit(train)
    assert store.related(evals[0], "evaluates") == [train]
    assert store.related(train, inverse=True) == sorted(evals)

    with store.db.read() as conn:
        before = sorted(tuple(r) for r in conn.execute(select(record_rows)))
    with store.db.write() as conn:
        conn.execute(delete(relations))
        conn.execute(delete(record_rows))
    assert store.reindex() == 3
    with store.db.read() as conn:
        after = sorted(tuple(r) for r in conn.execute(select(record_rows)))
    assert after == before
    assert store.related(train, "evaluates", inverse=True) == sorted(evals)
    assert store.get(evals[0]).state == "running"


def test_find_with_config_filters_and_paging(store: RecordStore) -> None:
    made = [
        store.create("train", {"lr": lr, "model": {"depth": d, "name": n}})
        for lr, d, n in [(0.1, 2, "a"), (0.01, 4, "b"), (0.001, 8, "a"), (0.5, 4, "c")]
    ]
    store.create("eval", {"model": {"depth": 8}})

    def uuids(**kw: object) -> list[str]:
        return [r.uuid for r in store.find(**kw).items]  # type: ignore[arg-type]

    assert uuids(kind="train", config={"model.depth": ("gte", 4)}) == made[1:]
    assert uuids(config={"model.name": "a"}) == [made[0], made[2]]
    assert uuids(kind="train", config={"lr": ("lt", 0.05), "model.depth": ("ne", 8)}) == [made[1]]
    first = store.find(kind="train", limit=3)
    assert [r.uuid for r in first.items] == made[:3] and first.next is not None
    assert [r.uuid for r in store.find(kind="train", after=first.next).items] == made[3:]
    for bad in ({"a;drop table": 1}, {"lr": ("like", 1)}, {"lr": [1]}):
        with pytest.raises(InvalidInput):
            store.find(config=bad)


def test_run_state(store: RecordStore) -> None:
    run = store.create("train", {})
    assert store.get(run).state == "created"
    store.mark(run, "started")
    store.mark(run, "heartbeat")
    assert store.get(run).state == "running"
    with store.db.write() as conn:
        old = time.time() - 120
        conn.execute(update(record_rows).where(record_rows.c.uuid == run).values(heartbeat_at=old))
    assert store.get(run).state == "died"
    store.mark(run, "finished")
    assert store.get(run).state == "finished"
    assert (store.directory(run) / "finished_at").exists()


def test_delete_lets_gc_reclaim_the_tree(store: RecordStore) -> None:
    run = store.create("train", {})
    store.save_file(run, "a.bin", b"z" * 100_000)
    tree = store.commit(run)
    assert store.keep.gc(grace_s=0).swept == []  # a listed record's tree is a root
    assert store.delete(run) and not store.contains(run)
    assert tree in store.keep.gc(grace_s=0).swept


def test_async_twins(tmp_path: Path) -> None:
    datakeep.init(tmp_path / "lab").close()

    async def main() -> None:
        async with await AsyncRecordStore.open(tmp_path / "lab") as records:
            run = await records.create("train", {"lr": 0.1})
            await records.save_file(run, "m.json", {"acc": 1})
            assert await records.load_file(run, "m.json") == {"acc": 1}
            tree = await records.commit(run)
            assert (await records.get(run)).tree == tree
            assert [r.uuid for r in (await records.find(kind="train")).items] == [run]
            assert (await records.verify()).ok

    asyncio.run(main())


def test_ingest_merges_and_keeps_the_private_overlay(store: RecordStore, tmp_path: Path) -> None:
    parent = store.create("train", {"lr": 0.1})
    child = store.create("eval", {"split": "val"}, parent=parent)
    store.relate("evaluates", child, parent)
    store.save_file(child, "score.json", {"acc": 0.8})
    store.upload(child, related=True)
    copies = store.download(child, tmp_path / "moved", related=True)
    assert sorted(c.name for c in copies) == sorted([child, parent])

    other = RecordStore(datakeep.init(tmp_path / "elsewhere"))
    # children before parents, twice: the same outcome
    for _ in range(2):
        assert other.ingest_directory(tmp_path / "moved" / child) == child
        assert other.ingest_directory(tmp_path / "moved" / parent) == parent
    assert other.get(child).parent == parent and other.related(child) == [parent]
    assert other.load_file(child, "score.json") == {"acc": 0.8}

    other.set_private(child, hidden=True, private={"note": "mine"})
    other.save_file(child, "local-only.txt", "kept")
    other.ingest_directory(tmp_path / "moved" / child)  # never deletes what is here
    assert other.load_file(child, "local-only.txt") == "kept"
    assert other.private(child) == {"hidden": True, "private": {"note": "mine"}}
    assert [r.uuid for r in other.find(kind="eval").items] == []  # hidden
    other.reindex()
    assert other.private(child)["hidden"] is True
    with pytest.raises(InvalidInput, match="not a record directory"):
        other.ingest_directory(tmp_path)


def test_records_move_to_another_machine_through_a_remote(
    store: RecordStore, tmp_path: Path, where: Where
) -> None:
    lab = where("lab")
    store.keep.add_remote("origin", *lab)
    run = store.create("train", {"lr": 0.1})
    store.save_file(run, "weights.npy", np.zeros(1000))
    store.commit(run)  # pushed to the remote as it is committed

    laptop = RecordStore(datakeep.init(tmp_path / "laptop"))
    laptop.keep.add_remote("origin", *lab)
    laptop.keep.pull("origin", everything=True)  # it never pushed there: listed
    assert laptop.reindex() == 1
    assert laptop.get(run).config == {"lr": 0.1}
    assert laptop.load_file(run, "weights.npy").shape == (1000,)


def test_records_commands(tmp_path: Path) -> None:
    from .conftest import run_cli

    lab = tmp_path / "lab"
    with RecordStore(datakeep.init(lab)) as store:
        a = store.create("train", {"model": {"depth": 4}})
        b = store.create("train", {"model": {"depth": 2}})
        store.relate("beats", a, b)
        store.commit(a)
        store.commit(b)
    listed = json.loads(
        run_cli("records", "ls", "--where", "model.depth>=3", "--json", cwd=lab).stdout
    )
    assert [r["uuid"] for r in listed] == [a]
    assert json.loads(run_cli("records", "show", a[:8], "--json", cwd=lab).stdout)["uuid"] == a
    assert run_cli("records", "related", a, cwd=lab).stdout.decode().split() == [b]
    run_cli("records", "get", a, str(tmp_path / "out"), cwd=lab)
    assert (tmp_path / "out" / "model.json").exists()
    assert run_cli("records", "verify", cwd=lab).stdout.startswith(b"ok:")
    assert run_cli("records", "reindex", cwd=lab).stdout == b"reindexed 2 record(s)\n"
    bad = run_cli("records", "ls", "--where", "depth", cwd=lab, check=False)
    assert bad.returncode == 2 and b"PATH OP VALUE" in bad.stderr
