"""``datakeep fsck``, ``repair``, ``gc``, ``pin`` and ``unpin``."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from . import AS_JSON, DAMAGE, _open, _progress, _report, _size, cli

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)\Z")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``24h``, ``7d``, ``2w`` or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration such as 24h, 30m or 7d")
    return float(match[1]) * _UNITS[match[2] or "s"]


@cli.command()
@click.option(
    "--repair-index",
    is_flag=True,
    help="Make the index say what is really there (never deletes bytes).",
)
@click.option(
    "--repair",
    "fetch",
    is_flag=True,
    help="First fetch every missing or damaged content from the remotes (as 'repair').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def fsck(repair_index: bool, fetch: bool, as_json: bool) -> None:
    """Check the index against the blobs both ways and re-hash every blob.

    Reports missing and corrupted blobs, tree entries naming absent contents, and orphan
    blobs (left by interrupted puts; gc removes them). Exits 1 on any problem.

    \b
    Example:
        datakeep fsck && datakeep fsck --repair-index --json
    """
    with _open() as keep:
        if fetch:
            with _progress("repair") as report:
                repaired = keep.repair(report)
            for digest, remote in sorted(repaired.repaired.items()):
                click.echo(f"FETCHED {digest} from {remote}", err=as_json)
        with _progress("fsck") as report:
            result = keep.fsck(repair_index, report)
    if as_json:
        doc: dict[str, Any] = {
            "ok": result.ok,
            "checked": result.checked,
            "bytes": result.nbytes,
            "missing": result.missing,
            "corrupted": [{"digest": p.digest, "error": p.error} for p in result.corrupted],
            "dangling": [
                {"tree": d.tree, "path": d.path, "digest": d.digest} for d in result.dangling
            ],
            "orphans": [{"key": k, "size": n} for k, n in result.orphans],
            "repairs": result.repairs,
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for digest in result.missing:
            click.echo(f"MISSING {digest}")
        for problem in result.corrupted:
            click.echo(f"CORRUPT {problem.error}")
        for entry in result.dangling:
            click.echo(f"DANGLING {entry.tree} {entry.path} -> {entry.digest}")
        for line in result.repairs:
            click.echo(f"REPAIRED {line}")
        orphan_bytes = sum(n for _k, n in result.orphans)
        problems = len(result.missing) + len(result.corrupted) + len(result.dangling)
        click.echo(
            f"{'ok' if result.ok else f'{problems} problem(s)'}: {result.checked} contents, "
            f"{_size(result.nbytes)} re-hashed; {len(result.orphans)} orphan blob(s) "
            f"({_size(orphan_bytes)}) for gc",
            err=not result.ok,
        )
    if not result.ok:
        sys.exit(DAMAGE)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def repair(as_json: bool) -> None:
    """Re-hash everything and fetch each missing or damaged content from the remotes.

    A damaged copy is set aside under quarantine/ first; each fetched copy is verified.
    Lists what no remote could give and exits 1 if anything is left.

    \b
    Example:
        datakeep repair --json
    """
    with _open() as keep, _progress("repair") as report:
        result = keep.repair(report)
    if as_json:
        doc = {
            "ok": result.ok,
            "checked": result.checked,
            "repaired": [{"digest": d, "remote": r} for d, r in sorted(result.repaired.items())],
            "unrecoverable": [{"digest": p.digest, "error": p.error} for p in result.unrecoverable],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for digest, remote in sorted(result.repaired.items()):
            click.echo(f"FETCHED {digest} from {remote}")
        for problem in result.unrecoverable:
            click.echo(f"LOST {problem.digest}: {problem.error}")
        state = "ok" if result.ok else f"{len(result.unrecoverable)} unrecoverable"
        click.echo(
            f"{state}: {result.checked} contents checked, {len(result.repaired)} fetched",
            err=not result.ok,
        )
    if not result.ok:
        sys.exit(DAMAGE)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@click.option(
    "--grace",
    default="24h",
    show_default=True,
    help="Spare anything stored more recently than this (s, m, h, d, w).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gc(dry_run: bool, grace: str, as_json: bool) -> None:
    """Remove contents that no pin, tag, tree or feature refers to, and orphan blobs.

    Puts wait while gc sweeps; nothing younger than --grace is removed.

    \b
    Example:
        datakeep gc --dry-run --grace 7d
    """
    grace_s = parse_duration(grace)
    with _open() as keep, _progress("gc") as report:
        result = keep.gc(grace_s, dry_run, report)
    if as_json:
        doc = {
            "dry_run": result.dry_run,
            "roots": result.roots,
            "live": result.live,
            "young": result.young,
            "swept": result.swept,
            "swept_bytes": result.swept_bytes,
            "orphans": result.orphans,
            "orphan_bytes": result.orphan_bytes,
            "temp_files": result.temp_files,
            "temp_bytes": result.temp_bytes,
            "reclaimed_bytes": result.reclaimed_bytes,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    kept = f"kept {result.live} live, {result.young} stored within the grace of {grace}"
    if not (result.swept or result.orphans or result.temp_files):
        click.echo(f"nothing to remove (grace {grace}); {kept}")
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(result.swept)} content(s) ({_size(result.swept_bytes)}) and "
        f"{len(result.orphans)} orphan blob(s) ({_size(result.orphan_bytes)}), "
        f"{len(result.temp_files)} temporary file(s) of killed writes "
        f"({_size(result.temp_bytes)}); {kept}"
    )


@cli.command()
@click.argument("digests", nargs=-1)
@click.option("--note", default="", help="Why it is pinned.")
@AS_JSON
def pin(digests: tuple[str, ...], note: str, as_json: bool) -> None:
    """Pin contents so gc keeps them (a pinned tree keeps its files); no DIGEST lists pins.

    \b
    Example:
        datakeep pin blake3:1f0c... --note "paper results"
    """
    with _open() as keep:
        named = [keep.store.resolve(digest) for digest in digests]
        for digest in named:
            keep.pin(digest, note)
        if not digests:
            pins = keep.pins()
            _report(as_json, {"pins": pins}, "\n".join(pins))
        else:
            _report(as_json, {"pinned": named}, "")


@cli.command()
@click.argument("digests", nargs=-1, required=True)
@AS_JSON
def unpin(digests: tuple[str, ...], as_json: bool) -> None:
    """Remove pins; gc may then remove the contents if nothing else refers to them.

    \b
    Example:
        datakeep unpin blake3:1f0c...
    """
    with _open() as keep:
        removed = sum(keep.unpin(keep.store.resolve(digest)) for digest in digests)
    _report(as_json, {"removed": removed}, f"removed {removed} pin(s)")
