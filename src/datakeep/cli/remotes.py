"""``datakeep remote add|ls|rm``, ``push`` and ``pull``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from . import AS_JSON, _answer, _open, _progress, _report, cli

if TYPE_CHECKING:
    from ..keep import Keep
    from ..progress import TransferReport
    from ..quick import QuickKeep

__all__ = ["pull", "push", "remote"]


def _transfer_json(result: Any) -> dict[str, int]:
    return {"transferred": result.transferred, "bytes": result.nbytes, "already": result.already}


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
@AS_JSON
def remote_add(name: str, location: str, endpoint: str | None, as_json: bool) -> None:
    """Register LOCATION (a directory or s3://bucket/prefix) as remote NAME.

    \b
    Example:
        datakeep remote add nas /mnt/nas/datakeep
    """
    with _open() as keep:
        added = keep.add_remote(name, location, endpoint)
    doc = {"name": added.name, "location": added.location, "backend": added.backend}
    _report(as_json, doc, f"added remote {added.name} ({added.location})")


@remote.command("ls")
@AS_JSON
def remote_ls(as_json: bool) -> None:
    """List the remotes.

    \b
    Example:
        datakeep remote ls
    """
    found = _answer(lambda keep: keep.remotes)
    doc = [{"name": r.name, "location": r.location, "backend": r.backend} for r in found]
    _report(as_json, doc, "\n".join(f"{r.name}\t{r.location}\t{r.backend}" for r in found))


@remote.command("rm")
@click.argument("name")
@AS_JSON
def remote_rm(name: str, as_json: bool) -> None:
    """Forget remote NAME and what it holds (its bytes are left in place).

    \b
    Example:
        datakeep remote rm nas
    """
    with _open() as keep:
        keep.remove_remote(name)
    _report(as_json, {"removed": name}, f"removed remote {name}")


@cli.command()
@click.argument("name", required=False)
@click.argument("digests", nargs=-1)
@click.option(
    "--verify",
    is_flag=True,
    help="List the remote first and send again what it lost, whatever the inventory says.",
)
@AS_JSON
def push(name: str | None, digests: tuple[str, ...], verify: bool, as_json: bool) -> None:
    """Copy to remote NAME what it lacks: everything, or DIGESTS (trees with their files).

    \b
    Example:
        datakeep push backup blake3:1f0c... --verify
    """
    remote, named = _split(name, digests)

    def send(keep: Keep | QuickKeep) -> TransferReport:
        with _progress("push") as report:
            chosen = None if named is None else [keep.resolve(d) for d in named]
            return keep.push(remote, chosen, progress=report, verify=verify)

    result = _answer(send)
    _report(
        as_json,
        _transfer_json(result),
        f"pushed {result.transferred} blob(s), {result.nbytes} bytes; "
        f"{result.already} already there",
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
@AS_JSON
def pull(name: str | None, digests: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Bring back from remote NAME, verified, what this keep lacks or holds damaged.

    \b
    Example:
        datakeep pull backup blake3:1f0c...
    """
    if everything and digests:
        raise click.UsageError("give DIGEST... or --all, not both")
    with _open() as keep, _progress("pull") as report:
        result = keep.pull(*_split(name, digests), progress=report, everything=everything)
    _report(
        as_json,
        _transfer_json(result),
        f"pulled {result.transferred} blob(s), {result.nbytes} bytes; "
        f"{result.already} already here",
    )
