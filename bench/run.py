"""The benchmark suite: ``make bench`` (or ``python -m bench.run [SUITE...]``).

Each suite writes ``bench/results/<suite>.json`` and its table in BENCHMARKS.md.
"""

from __future__ import annotations

import sys
import time

from . import (
    cli,
    files,
    foundation,
    fs,
    index,
    memory,
    peers,
    records,
    remotes,
    runs,
    ui,
    workspaces,
)
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
    "memory": memory.run,
    "ui": ui.run,
}
# run only when named: installs DVC into a virtualenv of its own and restic with apt-get
OPT_IN = {"peers": peers.run}


def main() -> None:
    WORK.mkdir(exist_ok=True)
    chosen = sys.argv[1:] or list(SUITES)
    known = SUITES | OPT_IN
    unknown = set(chosen) - set(known)
    if unknown:
        raise SystemExit(f"unknown suite(s) {sorted(unknown)}; choose from {sorted(known)}")
    if empty_trash():  # what an earlier run left: let its freed inodes age first
        print(f"waiting {INODE_REUSE_DELAY_S} s for freed inodes to become reusable (see clean())")
        time.sleep(INODE_REUSE_DELAY_S)
    try:
        for name in chosen:
            known[name]()
    finally:
        empty_trash()


if __name__ == "__main__":
    main()
