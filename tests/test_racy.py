"""The stat cache's racy rule (issue 25), as git's: an entry is suspect only if its newest
stamp is not older, by the filesystem's timestamp granularity, than the moment its
snapshot was taken; a file written before the put began is trusted on the next put."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from datakeep.keep import Keep
from datakeep.trees import statcache
from datakeep.trees.statcache import CLOCK_SLACK_NS, RACY_NS, StatCache, racy_window_ns

from .conftest import count_reads

SECOND = 1_000_000_000


def settle(path: Path) -> None:
    """Wait until the stamps of what was just written under ``path`` are older than the
    racy window of its filesystem (the clock guarantees it: no timing is measured)."""
    window = racy_window_ns(os.stat(path).st_dev, 1)  # an ns stamp: the finest window
    time.sleep((window + CLOCK_SLACK_NS) / SECOND)


def fake_stat(mtime_ns: int, ctime_ns: int | None = None, dev: int = 0) -> os.stat_result:
    ctime_ns = mtime_ns if ctime_ns is None else ctime_ns
    # st_mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime (s), then the ns stamps
    # at the positions os.stat_result takes them from
    values: list[Any] = [0o100644, 42, dev, 1, 0, 0, 4096, 0, 0, 0]
    values += [None, None, None, 0, mtime_ns, ctime_ns]
    return os.stat_result(values)


def test_a_file_written_before_the_put_began_is_trusted_next_time(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "small.txt").write_text("small")
    (src / "sub" / "large.bin").write_bytes(os.urandom(3 << 20))
    settle(src)
    first = keep.put_tree(src)  # within 2 s of the writes: the old rule distrusted them
    reads = count_reads(keep, monkeypatch)
    assert keep.put_tree(src).digest == first.digest
    assert reads == [], "files older than the snapshot must not be read again"


def test_a_file_stamped_in_the_snapshots_granule_is_hashed_again(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    f = src / "f"
    f.write_bytes(b"A" * 100)
    settle(src)
    # stamped at (or after) the moment the put's snapshot is taken, as a file written
    # while the put scans it is
    stamp = time.time_ns() + 5 * SECOND
    os.utime(f, ns=(stamp, stamp))
    first = keep.put_tree(src)
    reads = count_reads(keep, monkeypatch)
    assert keep.put_tree(src).digest == first.digest
    assert reads == [f], "an entry as new as its snapshot must not be trusted"
    # the same size, other bytes, the same mtime: whatever the stamps say, it is re-read
    f.write_bytes(b"B" * 100)
    os.utime(f, ns=(stamp, stamp))
    reads.clear()
    second = keep.put_tree(src)
    assert reads == [f]
    assert second.digest != first.digest
    assert keep.get(keep.put(b"B" * 100).digest) == b"B" * 100


def test_an_unchanged_stat_in_the_snapshots_granule_is_not_vouched_for(
    tmp_path: Path,
) -> None:
    """What a change in the same granule looks like to the cache: the very same stat
    (dev, ino, size, mtime, ctime) as when the old bytes were hashed. Only the racy rule
    stands between it and the old digest."""
    cache = StatCache(tmp_path / "stat.sqlite")
    dev = os.stat(tmp_path).st_dev
    snapshot = 1_700_000_000 * SECOND + 123_456_789
    same_granule = fake_stat(snapshot, dev=dev)
    just_before = fake_stat(snapshot - CLOCK_SLACK_NS // 2, dev=dev)
    cache.store([(same_granule, "blake3:" + "a" * 64)], snapshot)
    assert cache.lookup([same_granule], "blake3") == [None]
    cache.store([(just_before, "blake3:" + "a" * 64)], snapshot)
    assert cache.lookup([just_before], "blake3") == [None], "within the coarse clock's lag"
    settled = fake_stat(snapshot - CLOCK_SLACK_NS - 2, dev=dev)
    cache.store([(settled, "blake3:" + "b" * 64)], snapshot)
    assert cache.lookup([settled], "blake3") == ["blake3:" + "b" * 64]
    # a recent ctime (a rename, a chmod) makes the entry as suspect as a recent mtime
    renamed = fake_stat(snapshot - 10 * SECOND, snapshot, dev=dev)
    cache.store([(renamed, "blake3:" + "c" * 64)], snapshot)
    assert cache.lookup([renamed], "blake3") == [None]
    cache.close()


def test_coarse_stamps_get_their_granule(tmp_path: Path) -> None:
    dev = os.stat(tmp_path).st_dev
    snapshot = 1_700_000_000 * SECOND + 500_000_000
    # whole seconds (ext4 with small inodes, ext3): a second's window
    assert racy_window_ns(dev, 1_699_999_999 * SECOND) >= SECOND
    cache = StatCache(tmp_path / "stat.sqlite")
    entry = fake_stat(1_699_999_999 * SECOND, dev=dev)  # 1.5 s before the snapshot
    cache.store([(entry, "blake3:" + "d" * 64)], snapshot)
    assert cache.lookup([entry], "blake3") == ["blake3:" + "d" * 64]
    # FAT's even seconds: 2 s
    fat = fake_stat(1_700_000_000 * SECOND, dev=dev)  # even, 0.5 s before
    cache.store([(fat, "blake3:" + "e" * 64)], snapshot)
    assert cache.lookup([fat], "blake3") == [None]
    cache.close()


def test_filesystems_not_known_to_stamp_from_this_clock_get_the_safe_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:50 / /mnt/share rw,relatime - nfs4 server:/export rw,vers=4.2\n"
        "41 27 0:51 / /mnt/fuse rw - fuse.sshfs host:/ rw\n"
    )
    found = statcache._read_mountinfo(str(mountinfo))
    assert found == {os.makedev(254, 0): True, os.makedev(0, 50): False, os.makedev(0, 51): False}
    monkeypatch.setattr(statcache, "_local_devices", found)
    assert racy_window_ns(os.makedev(0, 50), 123) == RACY_NS
    assert racy_window_ns(os.makedev(254, 0), 123) == 1 + CLOCK_SLACK_NS
    assert racy_window_ns(os.makedev(7, 7), 123) == RACY_NS  # no mount names it


def test_the_fast_no_op_put_answers_right_after_a_put(tmp_path: Path) -> None:
    """The command line's stdlib path (trees/unchanged.py) finds the tree the stat cache
    remembered from a put made moments after the files were written."""
    import datakeep
    from datakeep.trees.unchanged import unchanged_tree

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha")
    settle(data)
    with datakeep.init(tmp_path / "k") as keep:
        tree = keep.put_tree(data).digest
        where = keep.path
    assert unchanged_tree(where, data) == tree
