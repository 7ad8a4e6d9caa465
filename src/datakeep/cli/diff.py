"""``datakeep diff``: what changed between two stored trees."""

from __future__ import annotations

import json
import sys

import click

from . import _open, _quoted, _size, cli

__all__ = ["diff"]


@cli.command()
@click.argument("old")
@click.argument("new")
@click.option("--stat", is_flag=True, help="Counts and bytes only, not each path.")
@click.option("-z", "nul", is_flag=True, help="Raw paths, each line ended by NUL (scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def diff(old: str, new: str, stat: bool, nul: bool, as_json: bool) -> None:
    """What changed from tree OLD to tree NEW: + added, - removed, M changed, m mode only.

    \b
    Example:
        datakeep diff 1f0c2a 9e8d7c --stat
    """
    from ..trees.diff import diff_trees

    with _open() as keep:
        found = diff_trees(keep.store, keep.store.resolve(old), keep.store.resolve(new))
    if as_json:
        doc = {
            "added": [{"path": e.path, "size": e.size, "digest": e.digest} for e in found.added],
            "removed": [
                {"path": e.path, "size": e.size, "digest": e.digest} for e in found.removed
            ],
            "changed": [
                {"path": b.path, "old_digest": a.digest, "new_digest": b.digest, "size": b.size}
                for a, b in found.changed
            ],
            "mode_changed": [
                {"path": b.path, "old_mode": f"{a.mode:o}", "new_mode": f"{b.mode:o}"}
                for a, b in found.mode_changed
            ],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if stat:
        grown = sum(e.size for e in found.added) + sum(b.size for _, b in found.changed)
        click.echo(
            f"{len(found.added)} added, {len(found.removed)} removed, {len(found.changed)} "
            f"changed, {len(found.mode_changed)} mode changed; {_size(grown)} new or changed"
        )
        return
    lines = [("+", e.path) for e in found.added] + [("-", e.path) for e in found.removed]
    lines += [("M", b.path) for _, b in found.changed]
    lines += [("m", b.path) for _, b in found.mode_changed]
    for sign, path in sorted(lines, key=lambda line: line[1]):
        if nul:
            sys.stdout.buffer.write(f"{sign} {path}\0".encode())
        else:
            click.echo(f"{sign} {_quoted(path)}")
