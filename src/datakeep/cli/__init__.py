"""The ``datakeep`` command line: thin click commands over the public API.

The library is imported inside each command, so ``datakeep --version`` and ``--help``
start without loading SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .._version import __version__
from ..errors import DatakeepError

if TYPE_CHECKING:
    from ..content import Content
    from ..keep import Keep
    from ..progress import Progress

__all__ = ["cli", "main"]

LINK = click.Choice(["copy", "hardlink", "auto"])


class _Group(click.Group):
    """Turns datakeep errors into one line on stderr and a non-zero exit, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatakeepError as exc:
            click.echo(f"datakeep: error: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError:
            # a reader such as `head` went away; stop quietly like cat does
            sys.stderr.close()
            ctx.exit(1)


def _parse_pairs(values: tuple[str, ...], option: str = "--tag") -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        pairs[key] = value
    return pairs


def _open() -> Keep:
    import datakeep

    return datakeep.open(".")


def _content_json(c: Content) -> dict[str, Any]:
    return {
        "digest": c.digest,
        "size": c.size,
        "kind": c.kind,
        "created_at": c.created_at,
        "tags": c.tags,
    }


@contextmanager
def _progress(label: str) -> Iterator[Any]:
    """A progress callback that draws a bar on a terminal and does nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress as Bar

    with Bar(transient=True) as bar:
        task = bar.add_task(label, total=None)

        def report(p: Progress) -> None:
            bar.update(task, completed=p.done, total=p.total)

        yield report


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="datakeep")
def cli() -> None:
    """datakeep: keep the files and records of your pipelines, verified.

    \b
    Example:
        datakeep init && datakeep put data/ --tag stage=raw
    """


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--algorithm",
    type=click.Choice(["blake3", "sha256", "md5"]),
    default="blake3",
    show_default=True,
    help="Hash algorithm for every digest in this keep.",
)
@click.option(
    "--index",
    metavar="URL",
    help="A shared index, e.g. postgresql://user@host/db (default: SQLite in the keep).",
)
@click.option(
    "--blobs",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Keep the bytes in DIR (e.g. a shared mount) or in S3 (default: .datakeep/objects).",
)
@click.option("--endpoint", metavar="URL", help="An S3-compatible server for s3:// blobs.")
@click.option(
    "--route",
    "routes",
    multiple=True,
    metavar="NAME=s3://BUCKET/PREFIX",
    help="Another bucket for content whose --route-by tag is NAME (repeatable).",
)
@click.option("--route-by", metavar="TAG", help="The tag whose value picks a --route.")
def init(
    directory: str,
    algorithm: str,
    index: str | None,
    blobs: str | None,
    endpoint: str | None,
    routes: tuple[str, ...],
    route_by: str | None,
) -> None:
    """Create a keep in DIRECTORY/.datakeep (index.sqlite + objects/).

    \b
    Example:
        datakeep init ~/project --algorithm sha256
        datakeep init --index postgresql://me@db/team --blobs /mnt/shared/blobs
        datakeep init --blobs s3://bucket/team --endpoint http://minio:9000
        datakeep init --blobs s3://data/team --route model=s3://models/team --route-by kind
    """
    import datakeep

    route_map = _parse_pairs(routes, "--route")
    with datakeep.init(
        directory, algorithm, index, blobs, endpoint, route_map or None, route_by
    ) as keep:
        where = "SQLite" if keep.db.dialect == "sqlite" else keep.db.dialect
        click.echo(f"initialized empty keep in {keep.path} ({keep.algorithm}, {where} index)")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag what is stored.")
@click.option(
    "--link",
    type=LINK,
    default="copy",
    show_default=True,
    help="copy; hardlink (shares the file and makes it read-only); auto "
    "(reflink, else hardlink, else copy).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per path.")
def put(paths: tuple[str, ...], tags: tuple[str, ...], link: str, as_json: bool) -> None:
    """Store files and directories; print each one's digest.

    \b
    Example:
        datakeep put data/ model.pt --tag run=42
    """
    from ..keepdir import find_keep_dir
    from ..trees.unchanged import look_up

    tag_map = _parse_pairs(tags)
    # an unchanged directory is answered without loading the index library; otherwise
    # the full put reuses the reading of the directory made here
    keep_dir = find_keep_dir(".")
    found = [look_up(keep_dir, path) for path in paths]
    if not tag_map and not as_json and all(f.digest is not None for f in found):
        for f, path in zip(found, paths, strict=True):
            click.echo(f"{f.digest}  {path}")
        return
    with _open() as keep:
        for f, path in zip(found, paths, strict=True):
            with _progress(f"put {path}") as report:
                content = keep.put_path(path, tag_map, link, report, f.scanned)  # type: ignore[arg-type]
            if as_json:
                click.echo(json.dumps({"path": path, **_content_json(content)}))
            else:
                click.echo(f"{content.digest}  {path}")


@cli.command()
@click.argument("digest")
@click.argument("dest", required=False, type=click.Path())
@click.option(
    "--link",
    type=LINK,
    default="copy",
    show_default=True,
    help="copy, or hardlink files to the store (read-only, no extra space).",
)
def get(digest: str, dest: str | None, link: str) -> None:
    """Write a file or a whole tree back to DEST, verified (default: ./<hex>).

    \b
    Example:
        datakeep get blake3:1f0c... restored/ --link hardlink
    """
    from ..digest import parse_digest

    target = dest or parse_digest(digest).hex
    with _open() as keep, _progress(f"get {target}") as report:
        content = keep.export(digest, target, link, report)  # type: ignore[arg-type]
    click.echo(f"{content.digest}  {target}")


@cli.command()
@click.argument("digest")
def cat(digest: str) -> None:
    """Write a blob's bytes to standard output, verified.

    \b
    Example:
        datakeep cat blake3:1f0c... | head
    """
    out = sys.stdout.buffer
    with _open() as keep:
        for chunk in keep.stream(digest):
            out.write(chunk)
    out.flush()


@cli.command("ls")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only with this tag.")
@click.option("--kind", type=click.Choice(["blob", "tree"]), help="Only blobs or only trees.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--after", metavar="DIGEST", help="Start after this digest (paging).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one content per line.")
def ls_(
    tags: tuple[str, ...], kind: str | None, limit: int | None, after: str | None, as_json: bool
) -> None:
    """List stored contents, by digest.

    \b
    Example:
        datakeep ls --tag stage=raw --kind tree --json
    """
    tag_map = _parse_pairs(tags)
    shown = 0
    with _open() as keep:
        while limit is None or shown < limit:
            page_size = 1000 if limit is None else min(1000, limit - shown)
            page = keep.find(tag_map, kind, page_size, after)
            for c in page.items:
                if as_json:
                    click.echo(json.dumps(_content_json(c)))
                else:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(c.tags.items()))
                    click.echo(f"{c.digest}  {c.size:>12}  {c.kind:<4}  {labels}".rstrip())
            shown += len(page.items)
            if page.next is None:
                break
            after = page.next


@cli.command()
@click.argument("digest")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def info(digest: str, as_json: bool) -> None:
    """Show what the index knows of one content.

    \b
    Example:
        datakeep info blake3:1f0c... --json
    """
    with _open() as keep:
        content = keep.info(digest)
    if as_json:
        click.echo(json.dumps(_content_json(content), indent=2))
        return
    for key, value in _content_json(content).items():
        click.echo(f"{key:<11} {value}")


@cli.command()
@click.argument("digests", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Verify every stored content.")
@click.option("--remote", metavar="NAME", help="Check what remote NAME holds instead.")
@click.option("--rehash", is_flag=True, help="With --remote: download and re-hash every blob.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    digests: tuple[str, ...], everything: bool, remote: str | None, rehash: bool, as_json: bool
) -> None:
    """Re-hash stored contents; exit 1 and list each problem if any is bad.

    \b
    Example:
        datakeep verify --all
    """
    if remote is None and bool(digests) == everything:
        raise click.UsageError("give DIGEST..., --all or --remote NAME")
    with _open() as keep, _progress("verify") as report:
        if remote is not None:
            result = keep.verify_remote(remote, rehash, report)
        else:
            result = keep.verify_many(None if everything else digests, report)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "bytes": result.nbytes,
                    "problems": [{"digest": p.digest, "error": p.error} for p in result.problems],
                },
                indent=2,
            )
        )
    else:
        for problem in result.problems:
            where = "" if problem.error.startswith(problem.digest) else f"{problem.digest}: "
            click.echo(f"BAD {where}{problem.error}")
        state = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        click.echo(
            f"{state}: {result.checked} contents, {result.nbytes} bytes checked", err=not result.ok
        )
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.argument("digest")
@click.argument("tags", nargs=-1, required=True, metavar="KEY=VALUE...")
def tag(digest: str, tags: tuple[str, ...]) -> None:
    """Add or change tags of stored content.

    \b
    Example:
        datakeep tag blake3:1f0c... stage=clean owner=ana
    """
    with _open() as keep:
        keep.tag(digest, _parse_pairs(tags))


@cli.command()
@click.argument("digest")
@click.argument("keys", nargs=-1, required=True)
def untag(digest: str, keys: tuple[str, ...]) -> None:
    """Remove the named tags (only those) from stored content.

    \b
    Example:
        datakeep untag blake3:1f0c... owner
    """
    with _open() as keep:
        removed = keep.untag(digest, *keys)
    click.echo(f"removed {removed} tag(s)")


def main() -> None:
    cli(prog_name="datakeep")


from . import maintenance, remotes, runs  # noqa: E402, F401  (they register their commands)
