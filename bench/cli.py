"""Command-line start-up (issue 23): the small commands on an embedded keep with a handful
of contents, wall time from start to exit, median of 10 runs each, next to `git --version`
in the same run. Each command is also timed with the quick path turned off
(``DATAKEEP_QUICK=0``), which is what it cost before: the full keep imports SQLAlchemy.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import WORK, Row, clean, publish, table

RUNS = 10
LIMIT_S = 0.25


def _command() -> list[str]:
    """The console script users run, beside this interpreter."""
    script = Path(sys.executable).with_name("datakeep")
    return [str(script)] if script.exists() else [sys.executable, "-m", "datakeep"]


def _median_s(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode()}")
    return statistics.median(times)


def _keep(root: Path) -> tuple[str, str]:
    """A keep with a few contents and a remote that holds them all: (a small blob, a tree)."""
    import datakeep

    (root / "data").mkdir(parents=True)
    for i in range(5):
        (root / "data" / f"part-{i}.csv").write_text(f"row,{i}\n" * 100)
    (root / "notes.txt").write_text("a small blob\n" * 20)
    with datakeep.init(root) as keep:
        blob = keep.put_path(root / "notes.txt", {"stage": "raw"}).digest
        tree = keep.put_path(root / "data", {"stage": "prep"}).digest
        keep.add_remote("backup", str(root / "backup"))
        keep.push("backup")
    return blob, tree


def run() -> None:
    root = WORK / "cli-startup"
    clean(root)
    blob, tree = _keep(root)
    commands = {
        "ls": ["ls"],
        "info": ["info", tree],
        "cat": ["cat", blob],
        "tag": ["tag", blob, "seen=yes"],
        "remote_ls": ["remote", "ls"],
        "push_noop": ["push", "backup"],
        "verify": ["verify", blob],
    }
    quick_env = {k: v for k, v in os.environ.items() if k != "DATAKEEP_QUICK"}
    full_env = {**quick_env, "DATAKEEP_QUICK": "0"}
    git = shutil.which("git")
    results: dict[str, float] = {}
    for name, args in commands.items():
        results[f"{name}_s"] = _median_s([*_command(), *args], root, quick_env)
        results[f"{name}_full_path_s"] = _median_s([*_command(), *args], root, full_env)
    results["git_version_s"] = _median_s([git, "--version"], root, quick_env) if git else 0.0
    clean(root)
    publish("cli", results, table(_rows(commands), results, _baselines(results)))


def _rows(commands: dict[str, list[str]]) -> list[Row]:
    def row(name: str) -> Row:
        shown = " ".join(commands[name][:1] + ["D"] * (len(commands[name]) > 1))
        if name == "push_noop":
            shown = "push (nothing to send)"
        if name == "remote_ls":
            shown = "remote ls"

        def check(r: dict[str, float]) -> tuple[str, bool]:
            value = r[f"{name}_s"]
            full = r[f"{name}_full_path_s"]
            return f"{value:.3f} s (full path {full:.3f} s)", value <= LIMIT_S

        return f"`datakeep {shown}`, start to exit", f"<= {LIMIT_S} s", check

    return [row(name) for name in commands]


def _baselines(results: dict[str, float]) -> str:
    return (
        f"Medians of {RUNS} runs; `git --version` in the same run: "
        f"{results['git_version_s']:.3f} s. 'Full path' is the same command with "
        "`DATAKEEP_QUICK=0`, which loads SQLAlchemy as every command did before."
    )
