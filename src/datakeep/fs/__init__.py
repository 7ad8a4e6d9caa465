"""A keep as a read-only fsspec filesystem: ``datakeep://`` URLs for pandas, pyarrow,
DuckDB and every other fsspec reader, every byte verified (``pip install datakeep[fs]``).

    import pandas as pd
    df = pd.read_parquet("datakeep://blake3:3f2a9c41/tables/train.parquet")
    df = pd.read_csv("datakeep://tag/stage=raw/train.csv", storage_options={"keep": "data"})

:mod:`.filesystem` is the filesystem, :mod:`.paths` what a URL may name, :mod:`.resolve`
and :mod:`.features` what it names (contents, tags, trees; workspace snapshots and file
stores), :mod:`.trees` a tree as directories and :mod:`.blobs` the verified reads.
"""

from .filesystem import KeepFile, KeepFileSystem, ReadOnlyError

__all__ = ["KeepFile", "KeepFileSystem", "ReadOnlyError"]
