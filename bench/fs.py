"""``datakeep://`` through fsspec (issue 26), on SQLite.

* ``pd.read_parquet`` of a 200 MB file through ``datakeep://``, paired with reading the
  same file from local disk in the same rounds: once the blob has been verified in this
  process (its chunk hashes remembered), and as a first read that verifies it whole.
* 1,000 random 4 KiB ranged reads (``cat_file`` with a range) of a 1 GiB blob, after the
  first range (which verifies the blob once: timed apart).
"""

from __future__ import annotations

import random
import statistics
import time

import numpy as np
import pandas as pd

from datakeep.fs import KeepFileSystem

from .common import WORK, Row, fresh_keep, paired, publish, table

ROWS = 6_250_000  # 4 float64 columns of random numbers: 200 MB, incompressible
GIB = 1 << 30
READS = 1000


def _parquet() -> tuple[str, int]:
    path = WORK / "fs-200mb.parquet"
    if not path.exists():
        rng = np.random.default_rng(26)
        frame = pd.DataFrame({c: rng.random(ROWS) for c in "abcd"})
        frame.to_parquet(path, compression=None, index=False)
    return str(path), path.stat().st_size


def run() -> None:
    results: dict[str, float] = {}
    keep = fresh_keep(WORK / "fs-keep")
    source, size = _parquet()
    digest = keep.put_file(source).digest
    results["parquet_mb"] = size / 1e6
    url = f"datakeep://{digest}"

    def local() -> None:
        pd.read_parquet(source)

    def ours() -> None:
        pd.read_parquet(url, storage_options={"keep": str(keep.path.parent)})

    def forget() -> None:
        KeepFileSystem(keep=keep).blobs.forget(digest)

    ours()  # the blob verified once, as by a first read
    local_s, ours_s, ratio = paired(5, local, ours)
    results.update(parquet_local_s=local_s, parquet_datakeep_s=ours_s, parquet_ratio=ratio)
    _, first_s, first_ratio = paired(5, local, ours, before_ours=forget)
    results.update(parquet_first_s=first_s, parquet_first_ratio=first_ratio)

    def python_file() -> None:
        with open(source, "rb") as f:  # pyarrow reading through Python, nothing checked
            pd.read_parquet(f)

    plain_s, _, plain_ratio = paired(5, python_file, ours)
    results.update(parquet_python_file_s=plain_s, parquet_vs_python_file=plain_ratio)

    blob = WORK / "fs-1gib.bin"
    if not blob.exists():
        rng = random.Random(26)
        with open(blob, "wb") as f:
            for _ in range(GIB >> 24):
                f.write(rng.randbytes(1 << 24))
    big = keep.put_file(blob).digest
    fs = KeepFileSystem(keep=keep)
    started = time.perf_counter()
    fs.cat_file(big, 0, 4096)
    results["gib_first_range_s"] = time.perf_counter() - started
    rng = random.Random(1)
    rates = []
    for _ in range(3):
        offsets = [rng.randrange(GIB - 4096) for _ in range(READS)]
        started = time.perf_counter()
        for at in offsets:
            fs.cat_file(big, at, at + 4096)
        rates.append(READS / (time.perf_counter() - started))
    results["ranged_reads_per_s"] = statistics.median(rates)
    with fs.open(big) as f:
        started = time.perf_counter()
        for at in offsets:
            f.seek(at)
            f.read(4096)
        results["file_reads_per_s"] = READS / (time.perf_counter() - started)
    keep.close()

    rows: list[Row] = [
        (
            "`pd.read_parquet` of a 200 MB file through `datakeep://` vs local disk",
            "<= 1.2x",
            lambda r: (f"{r['parquet_ratio']:.2f}x", r["parquet_ratio"] <= 1.2),
        ),
        (
            "1,000 random 4 KiB ranged reads of a 1 GiB blob",
            ">= 5,000 reads/s",
            lambda r: (f"{r['ranged_reads_per_s']:,.0f} reads/s", r["ranged_reads_per_s"] >= 5000),
        ),
    ]
    baselines = (
        f"Parquet {results['parquet_mb']:.0f} MB, page cache warm: local "
        f"{results['parquet_local_s']:.2f} s, datakeep:// {results['parquet_datakeep_s']:.2f} s "
        "once the blob has been verified in this process (median of 5 paired rounds); a "
        "first read, which verifies the whole blob and hashes its 64 KiB chunks before "
        f"handing out a byte, {results['parquet_first_s']:.2f} s "
        f"({results['parquet_first_ratio']:.2f}x). The local file opened in Python and "
        f"handed to pandas, so that pyarrow reads it through Python calls as it reads any "
        f"fsspec file, takes {results['parquet_python_file_s']:.2f} s: datakeep:// is "
        f"{results['parquet_vs_python_file']:.2f}x that, verification included; the rest of "
        "the gap to local disk is pyarrow's native reader against Python I/O. "
        "1 GiB blob: that first verification "
        f"{results['gib_first_range_s']:.2f} s; the same 1,000 offsets through a seekable "
        f"`open` (fsspec's read-ahead, 256 KiB) {results['file_reads_per_s']:,.0f} reads/s."
    )
    publish("fs", results, "## datakeep:// through fsspec\n\n" + table(rows, results, baselines))
