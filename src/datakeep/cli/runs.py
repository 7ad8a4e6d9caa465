"""``datakeep runs``: read run records (projects, jobs, records) and export them."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from . import AS_JSON, cli

if TYPE_CHECKING:
    from ..runs import RunStore

__all__ = ["runs"]

STATUS = click.option(
    "--status", "statuses", multiple=True, help="Only this status (repeat for several)."
)


@contextmanager
def _runs() -> Iterator[RunStore]:
    from ..runs import RunStore

    with RunStore.open(".") as store:
        yield store


def _plain(value: Any) -> Any:
    """A model as JSON-able data (timestamps in ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _show(items: Sequence[Any], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_plain(i) for i in items], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, pad_edge=False)
    for item in items:
        row = _plain(item)
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console(width=200).print(table)


@cli.group()
def runs() -> None:
    """Run records of data factories: projects, master jobs, execution jobs, records.

    \b
    Example:
        datakeep runs jobs --project qa --status completed
    """


PAGE = click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
AFTER = click.option("--after", metavar="TOKEN", help="The next page (its token is printed last).")
JOB_ORDER = click.option(
    "--order", type=click.Choice(["newest", "oldest"]), default="newest", show_default=True
)


def _more(page: Any, as_json: bool) -> None:
    if page.next is not None and not as_json:
        click.echo(f"more: --after {page.next}", err=True)


@runs.command()
@click.option(
    "--order", type=click.Choice(["created", "name"]), default="created", show_default=True
)
@PAGE
@AFTER
@AS_JSON
def projects(order: str, limit: int, after: str | None, as_json: bool) -> None:
    """List projects, oldest first (or by name).

    \b
    Example:
        datakeep runs projects --order name --json
    """
    with _runs() as store:
        page = store.list_projects(order, limit, after)
    _show(page, ["project_id", "name", "created_at", "description"], as_json)
    _more(page, as_json)


@runs.command()
@click.option("--project", help="Master jobs of this project.")
@click.option("--master", help="Execution jobs of this master job instead.")
@STATUS
@JOB_ORDER
@PAGE
@AFTER
@AS_JSON
def jobs(
    project: str | None,
    master: str | None,
    statuses: tuple[str, ...],
    order: str,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """List master jobs (or, with --master, its execution jobs), newest first.

    \b
    Example:
        datakeep runs jobs --project qa --status failed --status cancelled
    """
    with _runs() as store:
        page: Any
        if master is not None:
            columns = ["job_id", "status", "worker_id", "completed_record_count", "error_message"]
            page = store.list_execution_jobs(master, statuses or None, limit, after, order)
        else:
            columns = ["master_job_id", "project_id", "status", "total_record_count", "end_time"]
            page = store.list_master_jobs(project, statuses or None, limit, after, order)
    _show(page, columns, as_json)
    _more(page, as_json)


@runs.command()
@click.argument("master_job_id")
@click.option("--job", help="Records of this execution job only.")
@STATUS
@JOB_ORDER
@PAGE
@AFTER
@AS_JSON
def records(
    master_job_id: str,
    job: str | None,
    statuses: tuple[str, ...],
    order: str,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """List the records of a master job, newest first, a page at a time.

    \b
    Example:
        datakeep runs records m-0042 --status failed --limit 20
    """
    from ..errors import NotFound

    with _runs() as store:
        if store.get_master_job(master_job_id) is None:
            raise NotFound(f"no master job {master_job_id!r}")
        if job is not None:
            found = store.get_execution_job(job)
            if found is None or found.master_job_id != master_job_id:
                raise NotFound(f"no execution job {job!r} in master job {master_job_id!r}")
        page = store.list_records(master_job_id, job, statuses or None, limit, after, order)
    _show(page, ["record_uid", "job_id", "status", "output_ref", "error_message"], as_json)
    _more(page, as_json)


@runs.command()
@click.argument("identifier")
@AS_JSON
def show(identifier: str, as_json: bool) -> None:
    """Show one master job (with its record counts), execution job or record.

    \b
    Example:
        datakeep runs show m-0042
    """
    from ..errors import NotFound

    with _runs() as store:
        found: dict[str, Any] | None = None
        master = store.get_master_job(identifier)
        if master is not None:
            found = {"master_job": _plain(master)}
            found["record_counts"] = store.count_records(master_job_id=identifier)
        elif (job := store.get_execution_job(identifier)) is not None:
            found = {"execution_job": _plain(job)}
            found["record_counts"] = store.count_records(job_id=identifier)
        elif (record := store.get_record_metadata(identifier)) is not None:
            found = {"record": _plain(record)}
            if record.output_ref is not None:
                found["data"] = store.get_record_data(record.output_ref)
    if found is None:
        raise NotFound(f"no master job, execution job or record {identifier!r}")
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for section, body in found.items():
        click.echo(f"{section}:")
        for key, value in body.items():
            click.echo(f"  {key:<24} {json.dumps(value, ensure_ascii=False)}")


@runs.command()
@click.argument("master_job_id")
@click.argument("output", type=click.File("w"), default="-")
@STATUS
def export(master_job_id: str, output: Any, statuses: tuple[str, ...]) -> None:
    """Write a master job's records and their data as JSON Lines (one record per line).

    \b
    Example:
        datakeep runs export m-0042 records.jsonl --status completed
    """
    from ..errors import NotFound

    with _runs() as store:
        if store.get_master_job(master_job_id) is None:
            raise NotFound(f"no master job {master_job_id!r}")
        written = 0
        everything = store.list_records(
            master_job_id, status=statuses or None, limit=None, order="oldest"
        )
        for record in everything:
            line = _plain(record)
            line["data"] = (
                None if record.output_ref is None else store.get_record_data(record.output_ref)
            )
            output.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    if output is not sys.stdout:
        click.echo(f"exported {written} record(s)", err=True)
