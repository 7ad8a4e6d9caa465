"""``datakeep ws``: workspaces with resources, snapshots, restore, lineage and remotes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import AS_JSON, LINK, _parse_pairs, _progress, _quoted, _report, cli, short_digest

if TYPE_CHECKING:
    from ..workspaces import Changes, Snapshot, Workspace

__all__ = ["ws"]


@contextmanager
def _workspace() -> Iterator[Workspace]:
    from ..workspaces import Workspace

    with Workspace.open(".") as workspace:
        yield workspace


def _echo_json(value: Any) -> None:
    _report(True, value, "")


def _echo_changes(changes: Changes, as_json: bool) -> None:
    if as_json:
        _echo_json({name: c.to_json() for name, c in changes.items()})
        return
    if not changes:
        click.echo("no changes")
    for name, c in changes.items():
        click.echo(f"{name}:")
        for sign, paths in (("+", c.added), ("M", c.changed), ("-", c.removed)):
            for path in paths:
                click.echo(f"  {sign} {_quoted(path)}")


def _echo_snapshot(s: Snapshot) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.created_at))
    tags = ",".join(s.tags) or "-"
    metrics = " ".join(f"{k}={v}" for k, v in sorted(s.metrics.items()))
    click.echo(
        f"{s.number:>4}  {short_digest(s.hash)}  {when}  {tags:<16} {s.message}  {metrics}".rstrip()
    )


@cli.group()
def ws() -> None:
    """Workspaces: resources with roles, snapshots that restore, lineage, push/pull/clone.

    \b
    Example:
        datakeep ws init && datakeep ws add source-data data ./data
        datakeep ws snapshot -m "baseline" --metric accuracy=0.91 v1
        datakeep ws restore v1
    """


@ws.command()
@click.argument("name", required=False)
@click.option("--keep", "keep_path", type=click.Path(file_okay=False), help="Use the keep there.")
@AS_JSON
def init(name: str | None, keep_path: str | None, as_json: bool) -> None:
    """Make this directory a workspace (with its own keep unless --keep names one).

    \b
    Example:
        datakeep ws init mnist
    """
    from ..workspaces import Workspace

    with Workspace.init(".", name, keep_path) as workspace:
        shown = {
            "name": workspace.name,
            "root": str(workspace.root),
            "keep": str(workspace.keep.path),
        }
    if as_json:
        _echo_json(shown)
    else:
        click.echo(f"workspace {shown['name']} at {shown['root']} (keep {shown['keep']})")


@ws.command()
@click.argument("role", type=click.Choice(["source-data", "intermediate-data", "results", "code"]))
@click.argument("name")
@click.argument("path")
@click.option("--allow-outside", is_flag=True, help="Allow a directory outside the workspace.")
@click.option("--endpoint", help="S3-compatible endpoint URL, for an s3:// PATH.")
@AS_JSON
def add(
    role: str, name: str, path: str, allow_outside: bool, endpoint: str | None, as_json: bool
) -> None:
    """Add the directory (or s3://bucket/prefix) PATH as resource NAME with ROLE.

    \b
    Example:
        datakeep ws add results results ./results
        datakeep ws add source-data images s3://lab-data/images
    """
    with _workspace() as workspace:
        added = workspace.add_resource(name, role, path, allow_outside, endpoint)
    if as_json:
        _echo_json({"name": added.name, "role": added.role, "path": str(added.path)})
    else:
        click.echo(f"added {added.role} resource {added.name} at {added.path}")


@ws.command()
@AS_JSON
def resources(as_json: bool) -> None:
    """List the resources with their role and path.

    \b
    Example:
        datakeep ws resources --json
    """
    with _workspace() as workspace:
        found = workspace.resources()
    if as_json:
        _echo_json([{"name": r.name, "role": r.role, "path": str(r.path)} for r in found])
        return
    for r in found:
        click.echo(f"{r.name:<20} {r.role:<18} {r.path}")


@ws.command()
@AS_JSON
def status(as_json: bool) -> None:
    """Files added (+), changed (M) and removed (-) since the last snapshot.

    \b
    Example:
        datakeep ws status
    """
    with _workspace() as workspace:
        changes = workspace.status()
    _echo_changes(changes, as_json)


@ws.command()
@click.argument("old")
@click.argument("new")
@AS_JSON
def diff(old: str, new: str, as_json: bool) -> None:
    """Files added, changed and removed from snapshot OLD to NEW.

    \b
    Example:
        datakeep ws diff v1 v2
    """
    with _workspace() as workspace:
        changes = workspace.diff(old, new)
    _echo_changes(changes, as_json)


def _metric_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@ws.command()
@click.argument("tag", required=False)
@click.option("-m", "--message", default="", help="What this snapshot is.")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=VALUE", help="A result to keep.")
@AS_JSON
def snapshot(tag: str | None, message: str, metrics: tuple[str, ...], as_json: bool) -> None:
    """Store every resource as a snapshot, tagged TAG if given.

    \b
    Example:
        datakeep ws snapshot -m "more epochs" --metric accuracy=0.93 v2
    """
    values = {k: _metric_value(v) for k, v in _parse_pairs(metrics, "--metric").items()}
    with _workspace() as workspace, _progress("snapshot") as progress:
        hash_ = workspace.snapshot(tag, message, values, progress)
        taken = workspace.find_snapshot(hash_)
    if as_json:
        _echo_json(taken.to_json())
    else:
        click.echo(f"snapshot {taken.number} {hash_} {','.join(taken.tags)}".rstrip())


@ws.command()
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="Show at most N.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default newest first).")
@AS_JSON
def history(max_count: int | None, oldest_first: bool, as_json: bool) -> None:
    """The snapshots: number, hash, time, tags, message, metrics.

    \b
    Example:
        datakeep ws history -n 5
    """
    with _workspace() as workspace:
        found = workspace.history(not oldest_first, max_count)
    if as_json:
        _echo_json([s.to_json() for s in found])
        return
    for s in found:
        _echo_snapshot(s)


@ws.command()
@click.argument("snapshot_name", metavar="TAG|HASH")
@click.option("--only", multiple=True, metavar="RESOURCE", help="Restore only these.")
@click.option("--leave", multiple=True, metavar="RESOURCE", help="Leave these as they are.")
@click.option("--link", type=LINK, default="copy", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite changes not snapshotted.")
@AS_JSON
def restore(
    snapshot_name: str,
    only: tuple[str, ...],
    leave: tuple[str, ...],
    link: str,
    force: bool,
    as_json: bool,
) -> None:
    """Make the resources exactly as in a snapshot, verified (results stay as they are).

    \b
    Example:
        datakeep ws restore --only data v1
    """
    with _workspace() as workspace, _progress("restore") as progress:
        chosen = list(only) or None
        restored = workspace.restore(snapshot_name, chosen, leave, link, force, progress)  # type: ignore[arg-type]
    if as_json:
        _echo_json(restored.to_json())
    else:
        click.echo(f"restored snapshot {restored.number} {restored.hash}")


@ws.command()
@click.argument("snapshot_name", metavar="TAG|HASH")
@click.argument("tag")
@AS_JSON
def untag(snapshot_name: str, tag: str, as_json: bool) -> None:
    """Remove TAG from a snapshot (its other tags stay).

    \b
    Example:
        datakeep ws untag 3f2a9c1b release
    """
    with _workspace() as workspace:
        workspace.remove_tag(snapshot_name, tag)
    _report(as_json, {"removed_tag": tag}, f"removed tag {tag}")


@ws.command("delete-snapshot")
@click.argument("snapshot_name", metavar="TAG|HASH")
@click.option("--keep-results", is_flag=True, help="Leave its results subdirectory in place.")
@AS_JSON
def delete_snapshot(snapshot_name: str, keep_results: bool, as_json: bool) -> None:
    """Forget a snapshot (gc reclaims what no other snapshot holds).

    \b
    Example:
        datakeep ws delete-snapshot v1 && datakeep gc
    """
    with _workspace() as workspace:
        hash_ = workspace.find_snapshot(snapshot_name).hash
        workspace.delete_snapshot(hash_, include_results=not keep_results)
    _report(as_json, {"deleted": hash_}, f"deleted snapshot {hash_}")


def _dot(steps: list[dict[str, Any]]) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for step in steps:
        node = f"step_{step['step_id'][:12]}"
        lines.append(f"  {node} [shape=box, label={json.dumps(step['step'])}];")
        for used in step["inputs"] + step["code"]:
            lines.append(f"  {json.dumps(used['ref'])} -> {node};")
        for made in step["outputs"]:
            lines.append(f"  {node} -> {json.dumps(made['ref'])};")
    lines.append("}")
    return "\n".join(lines)


@ws.command()
@click.argument("ref", metavar="RESOURCE[/PATH]")
@click.option("--dot", "as_dot", is_flag=True, help="Print the graph for Graphviz.")
@AS_JSON
def lineage(ref: str, as_dot: bool, as_json: bool) -> None:
    """Where RESOURCE came from: every step upstream of it, nearest first.

    \b
    Example:
        datakeep ws lineage results --dot | dot -Tsvg > lineage.svg
    """
    with _workspace() as workspace:
        steps, warnings = workspace.lineage.derived_from(ref)
    if as_json:
        _echo_json({"steps": steps, "warnings": warnings})
        return
    if as_dot:
        click.echo(_dot(steps))
    else:
        if not steps:
            click.echo(f"no lineage recorded for {ref}")
        for step in steps:
            params = " ".join(f"{k}={v}" for k, v in sorted(step["params"].items()))
            click.echo(f"{step['step']} {params}".rstrip())
            for part, label in (("inputs", "reads"), ("code", "runs"), ("outputs", "writes")):
                for used in step[part]:
                    click.echo(f"  {label:<6} {used['ref']} @ {used['version'][:20]}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@ws.command()
@click.argument("remote", required=False)
@AS_JSON
def push(remote: str | None, as_json: bool) -> None:
    """Send the snapshots, lineage and the bytes the remote lacks.

    \b
    Example:
        datakeep ws push origin
    """
    with _workspace() as workspace, _progress("push") as progress:
        new = workspace.push(remote, progress)
    _report(as_json, {"new_snapshots": new}, f"pushed {new} new snapshot(s)")


@ws.command()
@click.argument("remote", required=False)
@click.option("--force", is_flag=True, help="Overwrite changes not snapshotted.")
@AS_JSON
def pull(remote: str | None, force: bool, as_json: bool) -> None:
    """Bring the remote's snapshots and restore its newest one if it is new here.

    \b
    Example:
        datakeep ws pull origin
    """
    with _workspace() as workspace, _progress("pull") as progress:
        new = workspace.pull(remote, force, progress)
    _report(as_json, {"new_snapshots": new}, f"pulled {len(new)} new snapshot(s)")


@ws.command()
@click.argument("location")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--name", help="The workspace to clone, if the remote holds several.")
@click.option("--snapshot", "snapshot_name", help="Restore this snapshot, not the newest.")
@click.option("--path", "paths", multiple=True, metavar="RESOURCE=DIR", help="Put a resource here.")
@click.option("--endpoint", help="S3-compatible endpoint URL.")
@AS_JSON
def clone(
    location: str,
    dest: str,
    name: str | None,
    snapshot_name: str | None,
    paths: tuple[str, ...],
    endpoint: str | None,
    as_json: bool,
) -> None:
    """Make DEST a new workspace from the remote LOCATION (a directory or s3://...).

    \b
    Example:
        datakeep ws clone s3://team-bucket/keep ./mnist --path data=/scratch/mnist
    """
    from ..workspaces import Workspace

    where = _parse_pairs(paths, "--path")
    with _progress("clone") as progress:
        cloned = Workspace.clone(location, dest, name, snapshot_name, where, endpoint, progress)
    with cloned:
        head = cloned.head()
    at = head.hash if head else None
    if as_json:
        _echo_json({"name": cloned.name, "root": str(cloned.root), "snapshot": at})
    else:
        click.echo(f"cloned workspace {cloned.name} into {cloned.root} at {at}")
