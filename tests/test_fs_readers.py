"""pandas, pyarrow and DuckDB read files out of a stored tree by ``datakeep://`` URL, and
get an error, not rows, from a damaged blob."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from datakeep.digest import hash_file
from datakeep.errors import IntegrityError
from datakeep.fs import KeepFileSystem
from datakeep.fs.blobs import SMALL
from datakeep.keep import Keep

from .conftest import blob_path, damage, damage_packed

ROWS = 400_000  # train.csv is larger than SMALL: its ranges come from verified chunks


@pytest.fixture
def frames(tmp_path: Path) -> dict[str, pd.DataFrame]:
    root = tmp_path / "data"
    (root / "tables").mkdir(parents=True)
    train = pd.DataFrame({"id": range(ROWS), "value": [i % 97 * 0.5 for i in range(ROWS)]})
    train.to_csv(root / "train.csv", index=False)
    assert (root / "train.csv").stat().st_size > SMALL
    parts = [pd.DataFrame({"id": range(i * 100, i * 100 + 100), "part": i}) for i in range(3)]
    for i, part in enumerate(parts):
        part.to_parquet(root / "tables" / f"part-{i}.parquet", index=False)
    return {"train": train, "tables": pd.concat(parts, ignore_index=True)}


@pytest.fixture
def tree(keep: Keep, tmp_path: Path, frames: dict[str, pd.DataFrame]) -> str:
    return keep.put_tree(tmp_path / "data").digest


def _options(keep: Keep) -> dict[str, str]:
    return {"keep": str(keep.path.parent)}


def test_pandas_reads_csv_and_parquet_by_url(
    keep: Keep, tree: str, frames: dict[str, pd.DataFrame]
) -> None:
    train = pd.read_csv(f"datakeep://{tree}/train.csv", storage_options=_options(keep))
    pd.testing.assert_frame_equal(train, frames["train"])
    part = pd.read_parquet(
        f"datakeep://{tree}/tables/part-1.parquet", storage_options=_options(keep)
    )
    pd.testing.assert_frame_equal(part, frames["tables"].iloc[100:200].reset_index(drop=True))


def test_pyarrow_dataset_over_a_stored_directory(
    keep: Keep, tree: str, frames: dict[str, pd.DataFrame]
) -> None:
    fs = KeepFileSystem(keep=keep)
    table = ds.dataset(f"{tree}/tables", filesystem=fs, format="parquet").to_table()
    assert table.num_rows == 300
    got = table.to_pandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, frames["tables"], check_dtype=False)
    assert isinstance(table, pa.Table)


def test_duckdb_through_its_fsspec_registration(keep: Keep, tree: str) -> None:
    con = duckdb.connect()
    con.register_filesystem(KeepFileSystem(keep=keep))
    total = con.execute(f"SELECT count(*), sum(id) FROM read_csv('datakeep://{tree}/train.csv')")
    assert total.fetchall() == [(ROWS, ROWS * (ROWS - 1) // 2)]
    parts = con.execute(
        f"SELECT part, count(*) FROM read_parquet('datakeep://{tree}/tables/*.parquet') "
        "GROUP BY part ORDER BY part"
    )
    assert parts.fetchall() == [(0, 100), (1, 100), (2, 100)]


def test_damaged_blobs_raise_instead_of_returning_rows(
    keep: Keep, tree: str, tmp_path: Path
) -> None:
    csv = blob_path(keep, hash_file(tmp_path / "data" / "train.csv"))
    data = bytearray(csv.read_bytes())
    data[len(data) // 2] = ord("7") if data[len(data) // 2] != ord("7") else ord("8")
    damage(csv, bytes(data))
    with pytest.raises(IntegrityError):
        pd.read_csv(f"datakeep://{tree}/train.csv", storage_options=_options(keep))
    con = duckdb.connect()
    con.register_filesystem(KeepFileSystem(keep=keep))
    with pytest.raises(duckdb.Error, match="corrupted"):
        con.execute(f"SELECT count(*) FROM read_csv('datakeep://{tree}/train.csv')").fetchall()

    parquet = tmp_path / "data" / "tables" / "part-2.parquet"
    raw = bytearray(parquet.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    damage_packed(keep, hash_file(parquet), bytes(raw))
    with pytest.raises(IntegrityError):
        pd.read_parquet(f"datakeep://{tree}/tables/part-2.parquet", storage_options=_options(keep))
    with pytest.raises(IntegrityError):
        ds.dataset(f"{tree}/tables", filesystem=KeepFileSystem(keep=keep)).to_table()
