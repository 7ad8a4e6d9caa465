"""``datakeep remote add|ls|rm``, ``push`` and ``pull``."""

from __future__ import annotations

import click

from . import _open, _progress, cli

__all__ = ["pull", "push", "remote"]


def _split(name: str | None, digests: tuple[str, ...]) -> tuple[str | None, list[str] | None]:
    """NAME is optional: a first argument with ':' is a digest (names cannot hold one)."""
    if name is not None and ":" in name:
        return None, [name, *digests]
    return name, list(digests) or None


@cli.group()
def remote() -> None:
    """Other directories or S3 buckets that hold copies of this keep's blobs.

    \b
    Example:
        datakeep remote add backup s3://bucket/team --endpoint http://minio:9000
    """


@remote.command("add")
@click.argument("name")
@click.argument("location")
@click.option("--endpoint", metavar="URL", help="An S3-compatible server for s3:// remotes.")
def remote_add(name: str, location: str, endpoint: str | None) -> None:
    """Register LOCATION (a directory or s3://bucket/prefix) as remote NAME.

    \b
    Example:
        datakeep remote add nas /mnt/nas/datakeep
    """
    with _open() as keep:
        added = keep.add_remote(name, location, endpoint)
    click.echo(f"added remote {added.name} ({added.location})")


@remote.command("ls")
def remote_ls() -> None:
    """List the remotes.

    \b
    Example:
        datakeep remote ls
    """
    with _open() as keep:
        for r in keep.remotes:
            click.echo(f"{r.name}\t{r.location}\t{r.backend}")


@remote.command("rm")
@click.argument("name")
def remote_rm(name: str) -> None:
    """Forget remote NAME and what it holds (its bytes are left in place).

    \b
    Example:
        datakeep remote rm nas
    """
    with _open() as keep:
        keep.remove_remote(name)
    click.echo(f"removed remote {name}")


@cli.command()
@click.argument("name", required=False)
@click.argument("digests", nargs=-1)
@click.option(
    "--verify",
    is_flag=True,
    help="List the remote first and send again what it lost, whatever the inventory says.",
)
def push(name: str | None, digests: tuple[str, ...], verify: bool) -> None:
    """Copy to remote NAME what it lacks: everything, or DIGESTS (trees with their files).

    \b
    Example:
        datakeep push backup blake3:1f0c... --verify
    """
    with _open() as keep, _progress("push") as report:
        remote, named = _split(name, digests)
        if named is not None:
            named = [keep.store.resolve(d) for d in named]
        result = keep.push(remote, named, progress=report, verify=verify)
    click.echo(
        f"pushed {result.transferred} blob(s), {result.nbytes} bytes; "
        f"{result.already} already there"
    )


@cli.command()
@click.argument("name", required=False)
@click.argument("digests", nargs=-1)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Everything the remote holds, found by listing it (for a keep that never pushed there).",
)
def pull(name: str | None, digests: tuple[str, ...], everything: bool) -> None:
    """Bring back from remote NAME, verified, what this keep lacks or holds damaged.

    \b
    Example:
        datakeep pull backup blake3:1f0c...
    """
    if everything and digests:
        raise click.UsageError("give DIGEST... or --all, not both")
    with _open() as keep, _progress("pull") as report:
        result = keep.pull(*_split(name, digests), progress=report, everything=everything)
    click.echo(
        f"pulled {result.transferred} blob(s), {result.nbytes} bytes; {result.already} already here"
    )
