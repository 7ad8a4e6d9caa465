"""The benchmark suite: ``make bench`` (or ``python -m bench.run [SUITE...]``).

Each suite writes ``bench/results/<suite>.json`` and its table in BENCHMARKS.md.
"""

from __future__ import annotations

import sys
import time

from . import cli, files, foundation, fs, index, records, remotes, runs, workspaces
from .common import INODE_REUSE_DELAY_S, WORK, empty_trash

SUITES = {
    "foundation": foundation.run,
    "index": index.run,
    "runs": runs.run,
    "remotes": remotes.run,
    "files": files.run,
    "records": records.run,
    "workspaces": workspaces.run,
    "fs": fs.run,
    "cli": cli.run,
}


def main() -> None:
    WORK.mkdir(exist_ok=True)
    chosen = sys.argv[1:] or list(SUITES)
    unknown = set(chosen) - set(SUITES)
    if unknown:
        raise SystemExit(f"unknown suite(s) {sorted(unknown)}; choose from {sorted(SUITES)}")
    if empty_trash():  # what an earlier run left: let its freed inodes age first
        print(f"waiting {INODE_REUSE_DELAY_S} s for freed inodes to become reusable (see clean())")
        time.sleep(INODE_REUSE_DELAY_S)
    try:
        for name in chosen:
            SUITES[name]()
    finally:
        empty_trash()


if __name__ == "__main__":
    main()
