"""``datakeep put``, ``get``, ``cat``, ``ls``, ``info``, ``verify``, ``tag`` and ``untag``."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..content.tagfilters import TagFilters, parse_tag_filters
from ..errors import DatakeepError, InvalidInput
from . import (
    AS_JSON,
    DAMAGE,
    LINK,
    _answer,
    _local_time,
    _open,
    _parse_pairs,
    _progress,
    _report,
    _size,
    cli,
    short_digest,
)

if TYPE_CHECKING:
    from ..content import Content, VerifyReport
    from ..keep import Keep
    from ..quick import QuickKeep

__all__: list[str] = []


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
    for path in paths:  # every argument is checked before anything is stored
        _check_readable(path)
    # an unchanged directory is answered without loading the index library; otherwise
    # the full put reuses the reading of the directory made here
    keep_dir = find_keep_dir(".")
    found = [look_up(keep_dir, path) for path in paths]
    if not tag_map and not as_json and all(f.digest is not None for f in found):
        for f, path in zip(found, paths, strict=True):
            click.echo(f"{f.digest}  {path}")
        return
    stored: list[str] = []
    with _open() as keep:
        for f, path in zip(found, paths, strict=True):
            try:
                with _progress(f"put {path}") as report:
                    content = keep.put_path(path, tag_map, link, report, f.scanned)  # type: ignore[arg-type]
            except DatakeepError as exc:
                if not stored:
                    raise
                left = ", ".join(p for p in paths if p not in stored)
                raise DatakeepError(
                    f"{path}: {exc} (stored: {', '.join(stored)}; not stored: {left})"
                ) from exc
            stored.append(path)
            if as_json:
                click.echo(json.dumps({"path": path, **content.as_json()}))
            else:
                click.echo(f"{content.digest}  {path}")


def _check_readable(path: str) -> None:
    """A clear error before anything is stored if ``path`` cannot be put (a link is
    followed, as the put follows it)."""
    from ..errors import InvalidInput, NotFound

    if not os.path.lexists(path):
        raise NotFound(f"no such file or directory: {path}")
    if not os.path.exists(path):
        raise NotFound(f"{path} is a symbolic link to nothing")
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise InvalidInput(f"cannot read {path}: permission denied")


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
@AS_JSON
def get(digest: str, dest: str | None, link: str, as_json: bool) -> None:
    """Write a file or a whole tree back to DEST, verified (default: ./<hex>; - for
    standard output, verified before the first byte is written).

    \b
    Example:
        datakeep get blake3:1f0c... restored/ --link hardlink
    """
    from ..digest import parse_digest

    if dest == "-":
        _write_out(digest, one_pass=False)
        return
    with _open() as keep:
        digest = keep.store.resolve(digest)
        target = dest or parse_digest(digest).hex
        with _progress(f"get {target}") as report:
            content = keep.export(digest, target, link, report)  # type: ignore[arg-type]
    _report(as_json, {"digest": content.digest, "path": target}, f"{content.digest}  {target}")


@cli.command()
@click.argument("digest")
@click.option(
    "--stream",
    "one_pass",
    is_flag=True,
    help="Read once and write as it reads: faster for a large blob, but a damaged one "
    "may have written bytes before the error.",
)
def cat(digest: str, one_pass: bool) -> None:
    """Write a blob's bytes to standard output, verified before the first byte is written.

    \b
    Example:
        datakeep cat blake3:1f0c... | head
    """
    _write_out(digest, one_pass)


def _write_out(digest: str, one_pass: bool) -> None:
    out = sys.stdout.buffer

    def write(keep: Keep | QuickKeep) -> None:
        for chunk in keep.stream(keep.resolve(digest), verify_first=not one_pass):
            out.write(chunk)

    _answer(write)
    out.flush()


@cli.command("ls")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY[=VALUE]",
    help="Only with this tag: KEY (any value), KEY=VALUE, or KEY=PREFIX* (a value that "
    "starts so; a value ending in a real * is written \\*). Repeat: all must hold.",
)
@click.option("--kind", type=click.Choice(["blob", "tree"]), help="Only blobs or only trees.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--after", metavar="DIGEST", help="Start after this digest (paging).")
@click.option("--full", is_flag=True, help="Whole digests and exact sizes in bytes.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one content per line.")
def ls_(
    tags: tuple[str, ...],
    kind: str | None,
    limit: int | None,
    after: str | None,
    full: bool,
    as_json: bool,
) -> None:
    """List stored contents, by digest (short: its first 12 hex digits, which any command
    takes; --full for whole digests).

    \b
    Example:
        datakeep ls --tag stage=raw --kind tree --json
        datakeep ls --tag owner --tag run=2024-*
    """
    filters = _tag_filters(tags)

    def list_pages(keep: Keep | QuickKeep) -> None:
        shown = 0
        start = None if after is None else keep.resolve(after)
        while limit is None or shown < limit:
            page_size = 1000 if limit is None else min(1000, limit - shown)
            page = keep.find(
                filters.exact, kind, page_size, start, filters.present, filters.prefixes
            )
            for c in page.items:
                if as_json:
                    click.echo(json.dumps(c.as_json()))
                else:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(c.tags.items()))
                    name = c.digest if full else short_digest(c.digest)
                    size = f"{c.size:>12}" if full else f"{_size(c.size):>10}"
                    click.echo(f"{name}  {size}  {c.kind:<4}  {labels}".rstrip())
            shown += len(page.items)
            if page.next is None:
                break
            start = page.next

    _answer(list_pages)


def _tag_filters(values: tuple[str, ...]) -> TagFilters:
    """``ls --tag`` values; one without a key is a usage error."""
    try:
        return parse_tag_filters(values)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint="--tag") from None


@cli.command()
@click.argument("digest")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def info(digest: str, as_json: bool) -> None:
    """Show what the index knows of one content (named by its digest or an alias: another
    digest of its bytes, checked when it was put).

    \b
    Example:
        datakeep info blake3:1f0c... --json
        datakeep info sha256:9f86d0...
    """

    def look_up(keep: Keep | QuickKeep) -> tuple[Content, dict[str, Any]]:
        content = keep.info(keep.resolve(digest))
        shown = {**content.as_json(), "aliases": keep.aliases(content.digest)}
        if content.kind == "tree":
            from ..trees.format import decode_tree

            entries = decode_tree(keep.get(content.digest), keep.algorithm)
            files = [e for e in entries if e.kind == "f"]
            shown["files"] = len(files)
            shown["data_size"] = sum(e.size for e in files)
        return content, shown

    content, shown = _answer(look_up)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    lines = [
        ("digest", content.digest),
        ("kind", content.kind),
        ("size", f"{_size(content.size)} ({content.size} bytes)"),
    ]
    if content.kind == "tree":
        lines += [("data", f"{_size(shown['data_size'])} in {shown['files']} file(s)")]
    lines += [
        ("created", _local_time(content.created_at)),
        ("tags", " ".join(f"{k}={v}" for k, v in sorted(content.tags.items()))),
        ("aliases", " ".join(shown["aliases"])),
    ]
    for key, text in lines:
        click.echo(f"{key:<11} {text}".rstrip())


@cli.command()
@click.argument("digests", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Verify every stored content.")
@click.option("--remote", metavar="NAME", help="Check what remote NAME holds instead.")
@click.option("--rehash", is_flag=True, help="With --remote: download and re-hash every blob.")
@click.option("--shallow", is_flag=True, help="A tree's manifest only, not its files.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    digests: tuple[str, ...],
    everything: bool,
    remote: str | None,
    rehash: bool,
    shallow: bool,
    as_json: bool,
) -> None:
    """Re-hash stored contents (a tree with all its files); exit 3 and list each problem.

    \b
    Example:
        datakeep verify --all
    """
    if remote is None and bool(digests) == everything:
        raise click.UsageError("give DIGEST..., --all or --remote NAME")

    def check(keep: Keep | QuickKeep) -> VerifyReport:
        with _progress("verify") as report:
            named = None if everything else [keep.resolve(d) for d in digests]
            return keep.verify_many(named, report, shallow)

    if remote is not None:
        with _open() as keep, _progress("verify") as report:
            result = keep.verify_remote(remote, rehash, report)
    else:
        result = _answer(check)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "bytes": result.nbytes,
                    "problems": [
                        {"digest": p.digest, "error": p.error, "path": p.path}
                        for p in result.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        for problem in result.problems:
            where = "" if problem.error.startswith(problem.digest) else f"{problem.digest}: "
            if problem.path is not None:
                where = f"{problem.path} ({problem.digest}): "
            click.echo(f"BAD {where}{problem.error}")
        state = "ok" if result.ok else f"{len(result.problems)} problem(s)"
        click.echo(
            f"{state}: {result.checked} contents, {result.nbytes} bytes checked", err=not result.ok
        )
    if not result.ok:
        sys.exit(DAMAGE)


@cli.command()
@click.argument("digest")
@click.argument("tags", nargs=-1, required=True, metavar="KEY=VALUE...")
@AS_JSON
def tag(digest: str, tags: tuple[str, ...], as_json: bool) -> None:
    """Add or change tags of stored content.

    \b
    Example:
        datakeep tag blake3:1f0c... stage=clean owner=ana
    """
    tag_map = _parse_pairs(tags)

    def add(keep: Keep | QuickKeep) -> tuple[str, dict[str, str]]:
        full = keep.resolve(digest)
        keep.tag(full, tag_map)
        return full, keep.info(full).tags

    full, now = _answer(add)
    labels = " ".join(f"{k}={v}" for k, v in sorted(now.items()))
    _report(as_json, {"digest": full, "tags": now}, f"{full}  {labels}")


@cli.command()
@click.argument("digest")
@click.argument("keys", nargs=-1, required=True)
@AS_JSON
def untag(digest: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Remove the named tags (only those) from stored content.

    \b
    Example:
        datakeep untag blake3:1f0c... owner
    """
    with _open() as keep:
        full = keep.store.resolve(digest)
        removed = keep.untag(full, *keys)
    _report(as_json, {"digest": full, "removed": removed}, f"removed {removed} tag(s)")
