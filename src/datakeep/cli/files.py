"""``datakeep files``: verified file stores (init, add, fetch, ls, info, manifest)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import AS_JSON, _open, _report, cli

if TYPE_CHECKING:
    from ..files import FileStore

__all__ = ["files"]

STORE = click.option(
    "--store", "store_name", metavar="NAME", help="The store (if the keep has several)."
)


@contextmanager
def _store(name: str | None) -> Iterator[FileStore]:
    from ..files import FileStore

    with _open() as keep:
        yield FileStore.open(keep, name)


@cli.group()
def files() -> None:
    """Named, write-once files per EVENT and PRODUCTION, hash-checked on every fetch.

    \b
    Example:
        datakeep files init "O4 results" && datakeep files add S230518h Prod0 posterior.h5
    """


@files.command("init")
@click.argument("name")
@AS_JSON
def init_store(name: str, as_json: bool) -> None:
    """Create a file store named NAME in this keep.

    \b
    Example:
        datakeep files init "O4 results"
    """
    from ..files import FileStore

    with _open() as keep:
        FileStore.create(keep, name)
    _report(as_json, {"created": name}, f"created file store {name!r}")


@files.command()
@click.argument("event")
@click.argument("production")
@click.argument("path", type=click.Path(dir_okay=False, readable=False))
@click.option("--as", "new_name", metavar="NAME", help="Store it under this name.")
@STORE
@AS_JSON
def add(
    event: str,
    production: str,
    path: str,
    new_name: str | None,
    store_name: str | None,
    as_json: bool,
) -> None:
    """Copy FILE into the store under EVENT and PRODUCTION; print its MD5 and uuid.

    \b
    Example:
        datakeep files add S230518h Prod0 results/posterior.h5 --as posterior.h5
    """
    with _store(store_name) as store:
        added = store.add_file(event, production, path, new_name=new_name)
    if as_json:
        click.echo(json.dumps(added, indent=2))
    else:
        click.echo(f"{added['hash']}  {added['uuid']}  {event}/{production}/{added['file']}")


@files.command()
@click.argument("event")
@click.argument("production")
@click.argument("name")
@click.option("--hash", "expected", metavar="HASH", help="Also check against this MD5 or digest.")
@click.option(
    "--to", "to", type=click.Path(file_okay=False), help="Write the copy in this directory."
)
@STORE
@AS_JSON
def fetch(
    event: str,
    production: str,
    name: str,
    expected: str | None,
    to: str | None,
    store_name: str | None,
    as_json: bool,
) -> None:
    """Write a verified, read-only copy of a stored file; print its path.

    Every hash (MD5, SHA-256, the keep's digest, and --hash) is checked; on a mismatch
    nothing is printed and the exit code is 1.

    \b
    Example:
        datakeep files fetch S230518h Prod0 posterior.h5 --hash 9e107d9d... --to /tmp
    """
    with _store(store_name) as store:
        path = store.fetch_file(event, production, name, hash=expected, to=to)
    click.echo(json.dumps({"path": str(path)}) if as_json else str(path))


@files.command("ls")
@click.argument("event")
@click.argument("production", required=False)
@STORE
@AS_JSON
def ls_files(event: str, production: str | None, store_name: str | None, as_json: bool) -> None:
    """List the files of EVENT (all its productions, or PRODUCTION).

    \b
    Example:
        datakeep files ls S230518h Prod0
    """
    namespace = (event,) if production is None else (event, production)
    with _store(store_name) as store:
        found = store.manifest.list_resources(*namespace)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(e) for e in found], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("production", "name", "size", "md5", "uuid", box=None, pad_edge=False)
    for e in found:
        table.add_row("/".join(e.namespace[1:]), e.name, str(e.size), e.md5, e.uuid)
    Console(width=200).print(table)


@files.command()
@click.argument("uuid", required=False)
@STORE
@AS_JSON
def info(uuid: str | None, store_name: str | None, as_json: bool) -> None:
    """Show the store (files, bytes), or the file with UUID and all its hashes.

    \b
    Example:
        datakeep files info f9f167bee8e3449aa0c68bf7f91e7b7a
    """
    with _store(store_name) as store:
        shown: dict[str, Any] = (
            store.info() if uuid is None else dataclasses.asdict(store.manifest.entry_by_uuid(uuid))
        )
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        click.echo(f"{key:<12} {'/'.join(value) if isinstance(value, list | tuple) else value}")


@files.command()
@click.option("--yaml", "as_yaml", is_flag=True, help="The original YAML layout (the default).")
@STORE
@AS_JSON
def manifest(as_yaml: bool, store_name: str | None, as_json: bool) -> None:
    """Print the store's manifest: events, productions, files with hash and uuid.

    \b
    Example:
        datakeep files manifest --yaml > manifest.yaml
    """
    with _store(store_name) as store:
        click.echo(
            json.dumps(store.manifest.as_dict(), indent=2) if as_json else store.manifest.yaml(),
            nl=as_json,
        )
