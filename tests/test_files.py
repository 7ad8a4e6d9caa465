"""Verified file stores: write-once names per namespace, three hashes, fetches checked
every time; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import secrets
import stat
import threading
from pathlib import Path

import pytest
import yaml

import datakeep
from datakeep.errors import DatakeepError, IntegrityError, InvalidInput, InvalidPath, NotFound
from datakeep.files import AlreadyPresent, AsyncFileStore, FileStore, HashError, NotAStoreError
from datakeep.keep import Keep

from .conftest import Where, blob_path, corrupt_inline, init_args, run_cli

MB = 1 << 20


@pytest.fixture
def store(keep: Keep) -> FileStore:
    return FileStore.create(keep, "O4 results")


def a_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(secrets.token_bytes(size))
    return path


def test_create_and_open(tmp_path: Path) -> None:
    root = tmp_path / "results"
    with FileStore.create(root, "O4") as store:
        assert store.name == "O4"
    with pytest.raises(FileExistsError):
        FileStore.create(root, "O4 again")
    with FileStore.open(root) as again:
        assert again.name == "O4"
    with pytest.raises(NotAStoreError, match="holds no keep"):
        FileStore.open(tmp_path / "elsewhere")
    datakeep.init(tmp_path / "plain").close()
    with pytest.raises(NotAStoreError, match="holds no file store"):
        FileStore.open(tmp_path / "plain")
    assert isinstance(NotAStoreError("x"), FileNotFoundError)


def test_several_stores_in_one_keep(keep: Keep) -> None:
    FileStore.create(keep, "a")
    FileStore.create(keep, "b")
    with pytest.raises(FileExistsError):
        FileStore.create(keep, "a")
    with pytest.raises(InvalidInput, match="name the store: a, b"):
        FileStore.open(keep)
    with pytest.raises(NotAStoreError):
        FileStore.open(keep, "c")
    assert FileStore.open(keep, "b").name == "b"


@pytest.mark.parametrize("size", [0, 10, 70_000, 3 * MB])
def test_add_then_fetch_checks_three_hashes(store: FileStore, tmp_path: Path, size: int) -> None:
    source = a_file(tmp_path / "src" / "posterior.h5", size)
    data = source.read_bytes()
    added = store.add_file("S230518h", "Prod0", source)
    assert added["file"] == "posterior.h5"
    assert added["hash"] == hashlib.md5(data).hexdigest()
    assert added["sha256"] == hashlib.sha256(data).hexdigest()
    assert added["digest"] == datakeep.digest.hash_bytes(data)
    assert len(added["uuid"]) == 32 and source.read_bytes() == data  # copied, not moved

    path = store.fetch_file("S230518h", "Prod0", "posterior.h5", hash=added["hash"])
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.fetch_uuid(added["uuid"], hash=added["digest"]).read_bytes() == data
    assert store.manifest.get_hash(added["uuid"]) == added["hash"]
    assert store.manifest.get_uuid("S230518h", "Prod0", "posterior.h5") == added["uuid"]


def test_the_manifest_is_always_current(store: FileStore, tmp_path: Path) -> None:
    other = FileStore.open(store.keep, store.name)  # a second handle
    for name in ("a", "b", "c"):
        source = a_file(tmp_path / name, 100)
        store.add_file("S1", "Prod0", source)
        assert store.fetch_file("S1", "Prod0", name).read_bytes() == source.read_bytes()
        assert other.fetch_file("S1", "Prod0", name).read_bytes() == source.read_bytes()


def test_a_name_is_write_once_and_content_is_stored_once(store: FileStore, tmp_path: Path) -> None:
    first = a_file(tmp_path / "one" / "result.xml", 200_000)
    added = store.add_file("S1", "Prod0", first)
    second = a_file(tmp_path / "two" / "result.xml", 200_000)
    with pytest.raises(AlreadyPresent) as refused:
        store.add_file("S1", "Prod0", second)
    assert isinstance(refused.value, FileExistsError)
    assert store.fetch_file("S1", "Prod0", "result.xml").read_bytes() == first.read_bytes()

    again = store.add_file("S2", "Prod1", first)  # the same bytes elsewhere: accepted
    renamed = store.add_file("S1", "Prod0", first, new_name="copy.xml")
    assert again["digest"] == renamed["digest"] == added["digest"]
    assert len({added["uuid"], again["uuid"], renamed["uuid"]}) == 3
    info = store.info()
    assert info["files"] == 3 and info["stored_bytes"] == 200_000


def test_edits_and_damage_never_give_wrong_bytes(store: FileStore, tmp_path: Path) -> None:
    large = a_file(tmp_path / "large.bin", 2 * MB)
    small = a_file(tmp_path / "small.txt", 300)
    added = {p.name: store.add_file("S1", "Prod0", p) for p in (large, small)}

    fetched = store.fetch_file("S1", "Prod0", "large.bin")
    fetched.chmod(0o644)
    with open(fetched, "r+b") as f:
        f.write(b"edited in place")
    again = store.fetch_file("S1", "Prod0", "large.bin")
    assert again == fetched and again.read_bytes() == large.read_bytes()

    blob = blob_path(store.keep, added["large.bin"]["digest"])
    blob.chmod(0o644)
    blob.write_bytes(b"x" + large.read_bytes()[1:])
    with pytest.raises(HashError):
        store.fetch_file("S1", "Prod0", "large.bin", to=tmp_path / "out")
    assert not (tmp_path / "out" / "large.bin").exists()
    corrupt_inline(store.keep, added["small.txt"]["digest"], b"y" + small.read_bytes()[1:])
    with pytest.raises(IntegrityError):
        store.fetch_file("S1", "Prod0", "small.txt", to=tmp_path / "out")
    with pytest.raises(HashError, match="the given hash"):
        store.fetch_file("S1", "Prod0", "small.txt", hash=hashlib.md5(b"other").hexdigest())


@pytest.mark.parametrize(
    "parts", [("..", "Prod0"), ("S1", "/etc"), ("S1", "a/b"), ("S1\x00", "Prod0"), ("", "Prod0")]
)
def test_names_cannot_escape_their_namespace(
    store: FileStore, tmp_path: Path, parts: tuple[str, str]
) -> None:
    source = a_file(tmp_path / "f", 10)
    with pytest.raises(InvalidPath):
        store.add_file(*parts, source)
    for bad_name in ("..", "../f", "/abs", "a\x00b"):
        with pytest.raises(InvalidPath):
            store.add_file("S1", "Prod0", source, new_name=bad_name)
    assert store.manifest.list_resources() == []


def test_a_failed_record_leaves_no_name_without_bytes(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = a_file(tmp_path / "big.bin", 3 * MB)

    def crash(*args: object, **kwargs: object) -> None:
        raise DatakeepError("simulated crash between the copy and the manifest")

    monkeypatch.setattr(FileStore, "_record", crash)
    with pytest.raises(DatakeepError, match="simulated"):
        store.add_file("S1", "Prod0", source)
    monkeypatch.undo()
    assert store.manifest.list_resources() == []
    with pytest.raises(NotFound):
        store.fetch_file("S1", "Prod0", "big.bin")
    added = store.add_file("S1", "Prod0", source)  # the name is free
    assert store.fetch_uuid(added["uuid"]).read_bytes() == source.read_bytes()


def test_list_resources_and_the_yaml_manifest(store: FileStore, tmp_path: Path) -> None:
    for event, production in (("S1", "Prod0"), ("S1", "Prod1"), ("S10", "Prod0")):
        store.add_file(event, production, a_file(tmp_path / event / production / "r.txt", 5))
    assert [e.namespace for e in store.manifest.list_resources("S1")] == [
        ("S1", "Prod0"),
        ("S1", "Prod1"),
    ]
    assert len(store.manifest.list_resources("S1", "Prod1")) == 1
    with pytest.raises(NotFound):
        store.manifest.get_uuid("S1", "Prod2", "r.txt")
    layout = yaml.safe_load(store.manifest.yaml())
    assert layout["name"] == "O4 results"
    entry = layout["events"]["S10"]["Prod0"]["r.txt"]
    assert entry["hash"] == store.manifest.get_hash(entry["uuid"])


def test_two_handles_add_at_once_from_threads(store: FileStore, tmp_path: Path) -> None:
    handles = [FileStore.open(store.keep, store.name) for _ in range(2)]
    sources = [a_file(tmp_path / f"t{i}", 100 if i % 5 else 80_000) for i in range(60)]

    def add(handle: FileStore, mine: list[Path]) -> None:
        for path in mine:
            handle.add_file("S1", "Prod0", path)

    threads = [threading.Thread(target=add, args=(h, sources[i::2])) for i, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.manifest.list_resources()) == 60
    assert store.keep.fsck().orphans == []


def _add_many(root: str, worker: int, count: int) -> None:
    with FileStore.open(root) as store:
        for i in range(count):
            path = Path(root) / f"src-{worker}-{i}"
            path.write_bytes(f"{worker}:{i}".encode() * (1 + (i % 3) * 30_000))
            store.add_file("S1", f"worker{worker}", path)


def test_processes_add_at_once(tmp_path: Path, index_url: str | None) -> None:
    root = tmp_path / "results"
    datakeep.init(root, index=index_url).close()
    FileStore.create(root, "shared").close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_add_many, args=(str(root), w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with FileStore.open(root) as store:
        assert len(store.manifest.list_resources("S1")) == 160
        assert store.keep.fsck().orphans == []


def test_gc_keeps_stored_files_and_remotes_carry_them(
    store: FileStore, tmp_path: Path, where: Where
) -> None:
    large = store.add_file("S1", "Prod0", a_file(tmp_path / "large.bin", 2 * MB))
    small = store.add_file("S1", "Prod0", a_file(tmp_path / "small.txt", 100))
    keep = store.keep
    report = keep.gc(grace_s=0)
    assert report.swept == []
    keep.add_remote("r", *where("r"))
    keep.push("r")
    blob_path(keep, large["digest"]).unlink()
    corrupt_inline(keep, small["digest"], b"z" * 100)
    keep.pull("r")
    assert store.fetch_uuid(large["uuid"]).read_bytes() == (tmp_path / "large.bin").read_bytes()
    assert store.fetch_uuid(small["uuid"]).read_bytes() == (tmp_path / "small.txt").read_bytes()


def test_async_twins(tmp_path: Path) -> None:
    source = a_file(tmp_path / "f.bin", 1000)

    async def main() -> None:
        async with await AsyncFileStore.create(tmp_path / "results", "async") as store:
            added = await store.add_file("S1", "Prod0", source)
            path = await store.fetch_file("S1", "Prod0", "f.bin", hash=added["hash"])
            assert path.read_bytes() == source.read_bytes()
            assert await store.get_uuid("S1", "Prod0", "f.bin") == added["uuid"]
            assert await store.get_hash(added["uuid"]) == added["hash"]
            assert [e.name for e in await store.list_resources("S1")] == ["f.bin"]
            assert (await store.info())["files"] == 1

    asyncio.run(main())


def test_files_commands(tmp_path: Path, index_url: str | None) -> None:
    project = tmp_path / "p"
    project.mkdir()
    source = a_file(project / "posterior.h5", 5000)
    run_cli("init", *init_args(index_url), cwd=project)
    run_cli("files", "init", "O4", cwd=project)
    added = json.loads(
        run_cli("files", "add", "S1", "Prod0", "posterior.h5", "--json", cwd=project).stdout
    )
    assert added["hash"] == hashlib.md5(source.read_bytes()).hexdigest()
    dup = run_cli("files", "add", "S1", "Prod0", "posterior.h5", cwd=project, check=False)
    assert dup.returncode == 1 and b"already in S1 Prod0" in dup.stderr
    fetched = run_cli(
        "files",
        "fetch",
        "S1",
        "Prod0",
        "posterior.h5",
        "--hash",
        added["hash"],
        "--to",
        str(tmp_path / "out"),
        cwd=project,
    )
    assert Path(fetched.stdout.decode().strip()).read_bytes() == source.read_bytes()
    wrong = run_cli(
        "files",
        "fetch",
        "S1",
        "Prod0",
        "posterior.h5",
        "--hash",
        "0" * 32,
        cwd=project,
        check=False,
    )
    assert wrong.returncode == 1 and wrong.stdout == b""
    listing = run_cli("files", "ls", "S1", cwd=project).stdout.decode()
    assert "posterior.h5" in listing and added["uuid"] in listing
    info = json.loads(run_cli("files", "info", added["uuid"], "--json", cwd=project).stdout)
    assert info["md5"] == added["hash"] and info["namespace"] == ["S1", "Prod0"]
    manifest = yaml.safe_load(run_cli("files", "manifest", "--yaml", cwd=project).stdout)
    assert manifest["events"]["S1"]["Prod0"]["posterior.h5"]["uuid"] == added["uuid"]
