"""The benchmark suite: ``make bench`` (or ``python -m bench.run [SUITE...]``).

Each suite writes ``bench/results/<suite>.json`` and its table in BENCHMARKS.md.
"""

from __future__ import annotations

import sys

from . import foundation, index, remotes, runs
from .common import WORK

SUITES = {
    "foundation": foundation.run,
    "index": index.run,
    "runs": runs.run,
    "remotes": remotes.run,
}


def main() -> None:
    WORK.mkdir(exist_ok=True)
    chosen = sys.argv[1:] or list(SUITES)
    unknown = set(chosen) - set(SUITES)
    if unknown:
        raise SystemExit(f"unknown suite(s) {sorted(unknown)}; choose from {sorted(SUITES)}")
    for name in chosen:
        SUITES[name]()


if __name__ == "__main__":
    main()
