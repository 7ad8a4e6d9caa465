"""The peers suite's tools: where DVC and restic come from, and how a command is timed.

DVC lives in a virtualenv of its own under ``bench/work/`` (never the project's ``.venv``
nor its lock file); restic is the Debian package, installed with apt-get when missing.
Every command of every tool, ``cp -r`` included, is started the same way, under GNU
``time``, which reports the command's own peak RSS (the larger of its own and that of the
children it waited for). Not ``os.wait4`` from here: a child started from this process
(by vfork or fork) carries this process's memory until it execs, and Linux counts that
high-water mark in the child's ``ru_maxrss``, so every tool seemed to peak at the
benchmark's own size (154 MB each in one run). ``time`` is a small process, so what it
adds is a few MB at most, the same for every tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import WORK

DVC_PIN = "dvc==3.67.*"
DVC_VENV = WORK / "peers-dvc-venv"
# a fixed password: the repository is thrown away after the run
RESTIC_PASSWORD = "datakeep-bench"


@dataclass(frozen=True, slots=True)
class Ran:
    """One command's wall time and peak resident set size."""

    seconds: float
    """Wall time from start to exit, after a ``sync`` that is not counted."""
    peak_rss: int
    """Peak RSS in bytes (the command or any child it waited for)."""
    stdout: str
    """What it printed on standard output."""


def command(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timed: bool = True
) -> Ran:
    """Run ``argv``; raise with its output if it fails.

    ``sync`` first when timed, so no command pays for an earlier one's writeback.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as peak,
    ):
        if timed:
            os.sync()
        started = time.perf_counter()
        child = subprocess.Popen(
            [gnu_time(), "-f", "%M", "-o", peak.name, *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        child.wait()
        seconds = time.perf_counter() - started
        peak_kib = int(peak.read().split()[-1])
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if child.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} (in {cwd}) exited {child.returncode}:\n"
                f"{stdout[-2000:]}{err.read().decode(errors='replace')[-4000:]}"
            )
    return Ran(seconds, peak_kib * 1024, stdout)


def gnu_time() -> str:
    """GNU time (the Debian package ``time``), installed with apt-get when missing."""
    return _debian_tool("time", "/usr/bin/time")


def datakeep_cli() -> list[str]:
    """The command users run: the console script beside this interpreter."""
    script = Path(sys.executable).parent / "datakeep"
    return [str(script)] if script.exists() else [sys.executable, "-m", "datakeep"]


def dvc_cli() -> list[str]:
    """DVC in its own virtualenv, created and filled on first use."""
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"installing {DVC_PIN} into {DVC_VENV}", flush=True)
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", "--clear", str(DVC_VENV)], check=True)
        pip = [str(DVC_VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "--quiet", DVC_PIN], check=True)
    return [str(dvc)]


def dvc_env() -> dict[str, str]:
    # no analytics (a network call) and no update check, so only the work is measured
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}


def restic_cli() -> list[str]:
    """restic from the Debian package, installed with apt-get when missing."""
    return [_debian_tool("restic", "restic")]


def _debian_tool(package: str, program: str) -> str:
    found = shutil.which(program)
    if found is None:
        print(f"installing {package} with apt-get", flush=True)
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=quiet)
        found = shutil.which(program)
        if found is None:
            raise RuntimeError(f"apt-get installed {package} but {program} is not on PATH")
    return found


def restic_env(repo: Path, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": RESTIC_PASSWORD,
        "RESTIC_CACHE_DIR": str(cache),
    }


def versions(datakeep: list[str], dvc: list[str], restic: list[str]) -> dict[str, str]:
    """Each tool's own account of its version, as printed."""

    def first_line(argv: list[str], env: dict[str, str] | None = None) -> str:
        return command(argv, env=env, timed=False).stdout.strip().splitlines()[0]

    return {
        "datakeep": first_line([*datakeep, "--version"]),
        "dvc": first_line([*dvc, "--version"], dvc_env()),
        "restic": first_line([*restic, "version"]),
        "cp": first_line(["cp", "--version"]),
    }


if __name__ == "__main__":  # install both peers ahead of a run
    WORK.mkdir(exist_ok=True)
    print(versions(datakeep_cli(), dvc_cli(), restic_cli()))
