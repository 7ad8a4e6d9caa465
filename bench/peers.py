"""datakeep beside its peers (issue 25): DVC, DVC with hard links, and restic on D1.

``python -m bench.run peers`` (opt-in: it installs DVC into a virtualenv of its own under
``bench/work/`` and restic with apt-get, see ``bench/peers_tools.py``). Rounds: 3, or
``DATAKEEP_BENCH_PEERS_ROUNDS``.

Each round starts every tool afresh (a new keep, DVC repositories, a restic repository)
and runs the steps in order. Each step runs ``cp -r`` of D1 and each tool's command back
to back, in an order that rotates from round to round (the baseline's place included),
and each ratio is that tool's time over that ``cp -r``; a cell quotes the median of the
rounds' ratios.
Every tool runs as users run it, a command line in a process of its own (datakeep's is
the ``datakeep`` console script), timed from start to exit after a ``sync`` that is not
counted, under GNU ``time`` for its peak RSS. The page cache is left as it
is, warm: D1 and every store written in the round fit in memory many times over, and no
tool reads from the disk that another does not.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from . import peers_tools as tools
from .common import WORK, clean, generate, publish
from .peers_tools import Ran, command

ROUNDS = int(os.environ.get("DATAKEEP_BENCH_PEERS_ROUNDS", "3"))
PEERS = WORK / "peers"
# D1 of its own, since the one-file step rewrites one of its files for a while
D1 = WORK / "peers-d1"
CHANGED = Path("dir000") / "file0000.bin"
BIG = 1 << 20
# the most a round holds at once: D1 copies, four stores, three remotes, an export
ROUND_BYTES = 12_000_000_000

# key: (row of the table, short name)
STEPS = {
    "add": ("cold add / backup", "add"),
    "noop": ("no-op re-add, right after the cold add", "no-op"),
    "one_file": ("one file changed (4 KiB rewritten), then re-add", "one file"),
    "push": ("push to a directory", "push"),
    "export_copy": ("export by copy / restore", "copy"),
    "export_hardlink": ("export by hardlink", "hardlink"),
    "verify": ("verify with a full read", "verify"),
}
TOOLS = {"datakeep": "datakeep", "dvc": "DVC", "dvc_hardlink": "DVC hardlink", "restic": "restic"}


def rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` by a new file, as an editor does; never in place, which would
    change the bytes in a store that hard-links it (DVC's cache, a hard-link export)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CpR:
    """The baseline of every step: ``cp -r`` of D1 to a new directory."""

    name = "cp_r"

    def __init__(self, root: Path) -> None:
        self.root = root

    def setup(self) -> None:
        pass

    def step(self, step: str) -> Ran | None:
        return command(["cp", "-r", str(D1), str(self.root / f"cp-{step}")])


class Datakeep:
    name = "datakeep"

    def __init__(self, root: Path) -> None:
        self.root, self.cli = root, tools.datakeep_cli()
        self.keep, self.tree = root / "datakeep", ""

    def setup(self) -> None:
        command([*self.cli, "init", str(self.keep)], timed=False)

    def _dk(self, *args: str) -> Ran:
        return command([*self.cli, *args], cwd=self.keep)

    def _put(self) -> Ran:
        ran = self._dk("put", "--json", str(D1))
        self.tree = json.loads(ran.stdout.splitlines()[0])["digest"]
        return ran

    def step(self, step: str) -> Ran | None:
        if step in ("add", "noop", "one_file"):
            return self._put()
        if step == "push":
            remote = self.root / "datakeep-remote"
            command([*self.cli, "remote", "add", "nas", str(remote)], cwd=self.keep, timed=False)
            return self._dk("push", "nas", self.tree)
        if step == "export_copy":
            return self._dk("get", self.tree, str(self.root / "datakeep-copy"))
        if step == "export_hardlink":
            out = self.root / "datakeep-hardlink"
            return self._dk("get", self.tree, str(out), "--link", "hardlink")
        if step == "verify":
            return self._dk("verify", self.tree)
        raise ValueError(step)


class Dvc:
    """A DVC repository without git (``dvc init --no-scm``) whose workspace holds a copy
    of D1; ``cache.type`` is left at its default (reflink, else copy: this ext4 has no
    reflink) or set to ``hardlink``."""

    def __init__(self, root: Path, hardlink: bool) -> None:
        self.name = "dvc_hardlink" if hardlink else "dvc"
        self.root, self.hardlink, self.cli = root, hardlink, tools.dvc_cli()
        self.repo = root / self.name

    def _dvc(self, *args: str, cwd: Path | None = None, timed: bool = True) -> Ran:
        return command([*self.cli, *args], cwd=cwd or self.repo, env=tools.dvc_env(), timed=timed)

    def _init(self, repo: Path) -> None:
        repo.mkdir(parents=True)
        self._dvc("init", "--no-scm", "--quiet", cwd=repo, timed=False)
        # its state and index databases in the round's tree, not shared with older runs
        site = self.root / f"{repo.name}-site-cache"
        self._dvc("config", "core.site_cache_dir", str(site), cwd=repo, timed=False)
        self._dvc("config", "core.analytics", "false", cwd=repo, timed=False)
        if self.hardlink:
            self._dvc("config", "cache.type", "hardlink", cwd=repo, timed=False)

    def setup(self) -> None:
        self._init(self.repo)
        command(["cp", "-r", str(D1), str(self.repo / "d1")], timed=False)

    def change(self, data: bytes) -> None:
        rewrite(self.repo / "d1" / CHANGED, data)

    def step(self, step: str) -> Ran | None:
        if step in ("add", "noop", "one_file"):
            return self._dvc("add", "--quiet", "d1")
        if step == "push":
            remote = self.root / f"{self.name}-remote"
            self._dvc("remote", "add", "--default", "nas", str(remote), timed=False)
            return self._dvc("push", "--quiet")
        if step == ("export_hardlink" if self.hardlink else "export_copy"):
            # a fresh workspace that shares the first one's cache: checkout from cache
            fresh = self.root / f"{self.name}-checkout"
            self._init(fresh)
            cache = self.repo / ".dvc" / "cache"
            self._dvc("config", "cache.dir", str(cache), cwd=fresh, timed=False)
            (fresh / "d1.dvc").write_bytes((self.repo / "d1.dvc").read_bytes())
            return self._dvc("checkout", "--quiet", cwd=fresh)
        return None


class Restic:
    """A fresh local repository per round (fixed password), with its own cache."""

    name = "restic"

    def __init__(self, root: Path) -> None:
        self.root, self.cli = root, tools.restic_cli()
        self.env = tools.restic_env(root / "restic-repo", root / "restic-cache")

    def setup(self) -> None:
        command([*self.cli, "init"], env=self.env, timed=False)

    def step(self, step: str) -> Ran | None:
        if step in ("add", "noop", "one_file"):
            return command([*self.cli, "backup", "--quiet", str(D1)], env=self.env)
        if step == "export_copy":
            target = self.root / "restic-restore"
            return command([*self.cli, "restore", "latest", "--target", str(target)], env=self.env)
        if step == "verify":
            return command([*self.cli, "check", "--read-data"], env=self.env)
        return None


Tool = CpR | Datakeep | Dvc | Restic


# what each step writes that no later step reads: its large files go right after it
OUTPUTS = {
    "push": ("datakeep-remote", "dvc-remote", "dvc_hardlink-remote"),
    "export_copy": ("datakeep-copy", "dvc-checkout", "restic-restore"),
    "export_hardlink": ("datakeep-hardlink", "dvc_hardlink-checkout"),
}


def drop_large(root: Path) -> None:
    """Delete the files of 1 MiB or more under ``root``; leave the rest for ``clean``.

    A round writes about ten 1 GB trees, more than the shared disk can spare three times
    over. Deleting only the large files frees nearly all of it while freeing a few hundred
    inodes, not the tens of thousands whose recent deletion slows down every file created
    after it (see ``clean``). A file linked elsewhere too only loses this name.
    """
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink() and path.stat().st_size >= BIG:
                path.unlink()
    os.sync()


def one_round(number: int, times: dict[str, list[float]], rss: dict[str, list[int]]) -> None:
    root = PEERS / f"round{number}"
    root.mkdir(parents=True)
    dvcs = [Dvc(root, hardlink=False), Dvc(root, hardlink=True)]
    everyone: list[Tool] = [CpR(root), Datakeep(root), *dvcs, Restic(root)]
    for tool in everyone:
        tool.setup()
    # whoever runs first after the last step's deletions meets the memory they freed:
    # the baseline takes its turn at that too
    turn = (number - 1) % len(everyone)
    order = everyone[turn:] + everyone[:turn]
    original = (D1 / CHANGED).read_bytes()
    for step in STEPS:
        if step == "one_file":
            new = os.urandom(len(original))
            rewrite(D1 / CHANGED, new)
            for dvc in dvcs:
                dvc.change(new)
        ran = {tool.name: tool.step(step) for tool in order}
        base = ran["cp_r"]
        assert base is not None
        for name, result in ran.items():
            if result is not None:
                times[f"{name}/{step}"].append(result.seconds)
                times[f"{name}/{step}/ratio"].append(result.seconds / base.seconds)
                rss[f"{name}/{step}"].append(result.peak_rss)
        line = ", ".join(f"{n} {r.seconds:.2f} s" for n, r in ran.items() if r is not None)
        print(f"round {number} {step}: {line}", flush=True)
        if step == "one_file":
            rewrite(D1 / CHANGED, original)
        for done in (f"cp-{step}", *OUTPUTS.get(step, ())):
            drop_large(root / done)
    drop_large(root)
    clean(root)


def cell(results: dict[str, Any], tool: str, step: str) -> str:
    key = f"{tool}/{step}"
    if f"{key}/ratio" not in results:
        return ""
    return f"{results[key + '/ratio']:.2f}x ({results[key]:.2f} s)"


def rss_cell(results: dict[str, Any], tool: str) -> str:
    peaks = {s: results[f"{tool}/{s}/peak_rss_bytes"] for s in STEPS if f"{tool}/{s}" in results}
    worst = max(peaks, key=lambda s: peaks[s])
    return f"{peaks[worst] / 1e6:.0f} MB ({STEPS[worst][1]})"


def render(results: dict[str, Any], versions: dict[str, str], rounds: int) -> str:
    lines = [
        "| step | " + " | ".join(TOOLS.values()) + " |",
        "| --- |" + " --- |" * len(TOOLS),
    ]
    for step, (title, _) in STEPS.items():
        lines.append(f"| {title} | " + " | ".join(cell(results, t, step) for t in TOOLS) + " |")
    lines.append("| peak RSS (largest step) | " + " | ".join(rss_cell(results, t) for t in TOOLS))
    lines[-1] += " |"
    cps = ", ".join(f"{short} {results[f'cp_r/{s}']:.2f} s" for s, (_, short) in STEPS.items())
    lines += [
        "",
        f"Ratios to `cp -r` of D1 in the same round, medians of {rounds} rounds (seconds: "
        "median time). Versions: "
        + "; ".join(f"{name} `{versions[name]}`" for name in ("datakeep", "dvc", "restic"))
        + f". `cp -r` of D1 beside each step (median): {cps}.",
    ]
    return "\n".join(lines)


def run() -> None:
    cli = (tools.datakeep_cli(), tools.dvc_cli(), tools.restic_cli())
    versions = tools.versions(*cli)
    generate(D1, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    if PEERS.exists():  # whatever an interrupted run left
        drop_large(PEERS)
        clean(PEERS)
    times: dict[str, list[float]] = {}
    rss: dict[str, list[int]] = {}
    for key in ("cp_r", *TOOLS):
        for step in STEPS:
            times[f"{key}/{step}"], times[f"{key}/{step}/ratio"], rss[f"{key}/{step}"] = [], [], []
    started = time.monotonic()
    try:
        for number in range(1, ROUNDS + 1):
            free = shutil.disk_usage(WORK).free
            if free < ROUND_BYTES:
                raise SystemExit(f"peers: {free / 1e9:.0f} GB free, a round needs about 12 GB")
            one_round(number, times, rss)
    finally:
        drop_large(PEERS)  # a failed round's stores: the disk is shared
    results: dict[str, Any] = {"versions": versions, "rounds": ROUNDS}
    for key, values in times.items():
        if values:
            results[key] = statistics.median(values)
            results[f"{key}/rounds"] = values
    for key, peaks in rss.items():
        if peaks:
            results[f"{key}/peak_rss_bytes"] = max(peaks)
    results["suite_seconds"] = time.monotonic() - started
    publish("peers", results, render(results, versions, ROUNDS))
