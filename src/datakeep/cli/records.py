"""``datakeep records``: find, show, fetch, verify and reindex experiment records."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import AS_JSON, DAMAGE, _open, _report, cli

if TYPE_CHECKING:
    from ..records import RecordStore

__all__ = ["parse_where", "records"]

_WHERE = re.compile(r"([A-Za-z0-9_.-]+)\s*(>=|<=|!=|==|=|>|<)\s*(.*)\Z")
_OPS = {">=": "gte", "<=": "lte", "!=": "ne", "==": "eq", "=": "eq", ">": "gt", "<": "lt"}


def parse_where(text: str) -> tuple[str, tuple[str, Any]]:
    """``a.b>=3`` as ``("a.b", ("gte", 3))``; the value is JSON if it parses, else text."""
    match = _WHERE.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not PATH OP VALUE (such as model.depth>=4)")
    path, op, raw = match.groups()
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return path, (_OPS[op], value)


@contextmanager
def _records() -> Iterator[RecordStore]:
    from ..records import RecordStore

    with _open() as keep:
        yield RecordStore(keep)


def _plain(info: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(info), "state": info.state}


@cli.group()
def records() -> None:
    """Experiment records: directories kept in the keep, related, found, verified.

    \b
    Example:
        datakeep records ls --kind train --where "model.depth>=4"
    """


@records.command("ls")
@click.option("--kind", help="Only records of this kind.")
@click.option(
    "--where", "conditions", multiple=True, metavar="PATH OP VALUE", help="A config condition."
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@AS_JSON
def ls_records(kind: str | None, conditions: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List records, oldest first.

    \b
    Example:
        datakeep records ls --kind train --where "lr<0.05" --json
    """
    config = dict(parse_where(c) for c in conditions)
    with _records() as store:
        found = store.find(kind=kind, config=config, limit=limit).items
    if as_json:
        click.echo(json.dumps([_plain(r) for r in found], indent=2))
        return
    for r in found:
        click.echo(f"{r.uuid}  {r.kind:<12} {r.state:<9} {json.dumps(r.config, sort_keys=True)}")


@records.command()
@click.argument("record_id")
@AS_JSON
def show(record_id: str, as_json: bool) -> None:
    """Show one record (a unique prefix of its id will do).

    \b
    Example:
        datakeep records show 3f2a9c
    """
    with _records() as store:
        shown = _plain(store.get(record_id))
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        click.echo(f"{key:<13} {json.dumps(value) if isinstance(value, dict | list) else value}")


@records.command()
@click.argument("record_id")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@AS_JSON
def get(record_id: str, directory: str | None, as_json: bool) -> None:
    """Write a record's committed directory to DIRECTORY (default: ./<uuid>), verified.

    \b
    Example:
        datakeep records get 3f2a9c results/
    """
    with _records() as store:
        uuid = store.resolve(record_id)
        out = store.retrieve(uuid, directory or uuid)
    _report(as_json, {"uuid": uuid, "path": str(out)}, str(out))


@records.command()
@AS_JSON
def verify(as_json: bool) -> None:
    """Re-hash every file of every committed record; exit 3 and list each bad path.

    \b
    Example:
        datakeep records verify
    """
    with _records() as store:
        report = store.verify()
    if as_json:
        problems = [{"digest": p.digest, "path": p.path, "error": p.error} for p in report.problems]
        click.echo(
            json.dumps({"ok": report.ok, "checked": report.checked, "problems": problems}, indent=2)
        )
    else:
        for p in report.problems:
            click.echo(f"BAD {p.path or p.digest}: {p.error}")
        state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(f"{state}: {report.checked} contents checked")
    if not report.ok:
        sys.exit(DAMAGE)


@records.command()
@AS_JSON
def reindex(as_json: bool) -> None:
    """Rebuild the records catalog and relations from the stored directories alone.

    \b
    Example:
        datakeep records reindex
    """
    with _records() as store:
        count = store.reindex()
    _report(as_json, {"reindexed": count}, f"reindexed {count} record(s)")


@records.command()
@click.argument("record_id")
@click.option("--name", help="Only relations of this name.")
@click.option("--inverse", is_flag=True, help="The records that relate to this one.")
@AS_JSON
def related(record_id: str, name: str | None, inverse: bool, as_json: bool) -> None:
    """List the records a record relates to (or, with --inverse, those relating to it).

    \b
    Example:
        datakeep records related 3f2a9c --name evaluates --inverse
    """
    with _records() as store:
        found = store.related(record_id, name, inverse)
    click.echo(json.dumps(found) if as_json else "\n".join(found))
