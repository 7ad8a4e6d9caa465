"""The ``datakeep`` command line: thin click commands over the public API.

The library is imported inside each command, so ``datakeep --version`` and ``--help``
start without loading SQLAlchemy.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._version import __version__
from ..errors import DatakeepError

if TYPE_CHECKING:
    from ..keep import Keep
    from ..progress import Progress
    from ..quick import QuickKeep

T = TypeVar("T")

__all__ = ["DAMAGE", "ERROR", "USAGE", "cli", "main"]

# exit statuses (the README's table): 0 done, and
ERROR = 1  # an error: nothing (more) was done
USAGE = 2  # the command line itself is wrong
DAMAGE = 3  # verify, fsck or repair found damage (or left some unrepaired)

LINK = click.Choice(["copy", "hardlink", "auto"])
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _report(as_json: bool, doc: Any, text: str) -> None:
    """What a command reports: ``doc`` as JSON for scripts, else ``text`` for people."""
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif text:
        click.echo(text)


class _Group(click.Group):
    """Turns datakeep errors into one line on stderr and a non-zero exit, no traceback
    (the lines a driver adds to its message only with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatakeepError as exc:
            first, *rest = [line.strip() for line in str(exc).splitlines() if line.strip()] or [
                type(exc).__name__
            ]
            click.echo(f"datakeep: error: {first}", err=True)
            if ctx.params.get("verbose"):
                for line in rest:
                    click.echo(f"  {line}", err=True)
            ctx.exit(ERROR)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Usage errors as one line saying what is wrong and the command's usage line
        (exit 2), instead of click's paragraph."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            # a group given no command: its help, as `datakeep --help` prints it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            click.echo(f"datakeep: error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            sys.exit(USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(ERROR)
        sys.exit(code if isinstance(code, int) else 0)


def _size(nbytes: float) -> str:
    """Bytes as people read them (``114.1 MiB``): the one way human output writes sizes;
    ``--json`` gives exact bytes."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.0f} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def _quoted(name: str) -> str:
    """A path as human output shows it: as it is, or, if it holds a control character, a
    quote or a backslash, in double quotes with C escapes (git's ``core.quotePath``);
    ``--json`` and ``-z`` give names raw."""
    if not any(c < " " or c in '"\\\x7f' for c in name):
        return name
    escapes = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
    body = "".join(
        escapes.get(c) or (f"\\{ord(c):03o}" if c < " " or c == "\x7f" else c) for c in name
    )
    return f'"{body}"'


def short_digest(digest: str) -> str:
    """The first 12 hex digits of a digest, as tables show it (a prefix every command takes)."""
    return digest.partition(":")[2][:12]


def _local_time(seconds: float) -> str:
    """A timestamp in local time, ISO 8601 with its offset."""
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


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


def _answer(body: Callable[[Keep | QuickKeep], T]) -> T:
    """``body`` run on the quick reader of an embedded keep (no SQLAlchemy to import), or,
    where that cannot answer, on the full keep; ``body`` writes its output only after
    its reads, so a second run never repeats any."""
    from ..quick import Unanswered, open_quick

    quick = open_quick(".")
    if quick is not None:
        try:
            with quick:
                return body(quick)
        except Unanswered:
            pass
    with _open() as keep:
        return body(keep)


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
@click.option("-v", "--verbose", is_flag=True, help="Print errors whole, not their first line.")
def cli(verbose: bool) -> None:
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
@AS_JSON
def init(
    directory: str,
    algorithm: str,
    index: str | None,
    blobs: str | None,
    endpoint: str | None,
    routes: tuple[str, ...],
    route_by: str | None,
    as_json: bool,
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
        doc = {"keep": str(keep.path), "algorithm": keep.algorithm, "index": keep.db.dialect}
        _report(
            as_json, doc, f"initialized empty keep in {keep.path} ({keep.algorithm}, {where} index)"
        )


def main() -> None:
    # a reader that goes away (`datakeep ls | head -1`) ends the command as it ends git or
    # cat: quietly, by the signal
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    cli(prog_name="datakeep")


from . import content, diff, files, maintenance, records, remotes, runs, ui, workspaces  # noqa: E402, F401  (they register commands)
