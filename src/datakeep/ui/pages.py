"""Every page of the web view as (URL, query, template). The query reads the request's
parameters and returns a JSON-able dict: the HTML page renders it, and the same URL under
``/api/`` returns it as it is, so scripts and notebooks see exactly what people see.

A feature's queries are imported by its first page: the server answers its first request
without loading every feature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request

from ..keep import Keep
from . import content, trees
from .display import url_part, url_path
from .preview import preview

if TYPE_CHECKING:
    from .runchart import StatusChart

__all__ = ["PAGES", "Page", "Served"]


class Served:
    """What the pages share: the keep and the caches of what never changes."""

    def __init__(self, keep: Keep) -> None:
        self.keep = keep
        self.trees = trees.TreeCache(keep)
        self._charts: StatusChart | None = None

    @property
    def charts(self) -> StatusChart:
        if self._charts is None:  # the run store is imported on first use: a fast start
            from .runchart import StatusChart

            self._charts = StatusChart(self.keep)
        return self._charts


Query = Callable[[Served, Request], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Page:
    path: str
    query: Query
    template: str


def _arg(request: Request, name: str) -> str | None:
    """A query parameter; absent or empty is None."""
    value = request.query_params.get(name)
    return value or None


def _param(request: Request, name: str) -> str:
    return str(request.path_params.get(name, ""))


def _content_list(s: Served, r: Request) -> dict[str, Any]:
    return content.content_list(
        s.keep, r.query_params.getlist("tag"), _arg(r, "kind"), _arg(r, "after")
    )


def _content(s: Served, r: Request) -> dict[str, Any]:
    found = content.content_page(s.keep, _param(r, "name"))
    item = found["content"]
    if item["kind"] == "blob":
        found["preview"] = preview(s.keep, item["digest"], item["size"], "")
    return found


def _tree(s: Served, r: Request) -> dict[str, Any]:
    path = _param(r, "path")
    if path.endswith("/"):  # a directory typed with its slash
        path = path[:-1]
    found = trees.tree_page(s.keep, s.trees, _param(r, "name"), path, _arg(r, "after"))
    entry = found.get("entry")
    if entry is not None and entry["kind"] == "f":
        found["preview"] = preview(s.keep, entry["digest"], entry["size"], entry["path"])
    return found


def _projects(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.projects_page(s.keep, _arg(r, "after"))


def _project(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.project_page(s.keep, _param(r, "project_id"), _arg(r, "after"))


def _master_job(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.master_job_page(
        s.keep, _param(r, "job_id"), _arg(r, "status"), _arg(r, "after"), _arg(r, "jobs_after")
    )


def _chart(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.chart_page(s.keep, s.charts, _param(r, "job_id"))


def _execution_job(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.execution_job_page(s.keep, _param(r, "job_id"), _arg(r, "status"), _arg(r, "after"))


def _record(s: Served, r: Request) -> dict[str, Any]:
    from . import runs

    return runs.record_page(s.keep, _param(r, "uid"))


def _workspaces(s: Served, r: Request) -> dict[str, Any]:
    from . import workspaces

    return workspaces.workspaces_page(s.keep, _arg(r, "after"))


def _workspace(s: Served, r: Request) -> dict[str, Any]:
    from . import workspaces

    return workspaces.workspace_page(s.keep, _param(r, "ws"), _arg(r, "after"))


def _snapshot(s: Served, r: Request) -> dict[str, Any]:
    from . import workspaces

    return workspaces.snapshot_page(s.keep, _param(r, "ws"), _param(r, "name"))


def _diff(s: Served, r: Request) -> dict[str, Any]:
    from . import workspaces

    a, b = _arg(r, "a"), _arg(r, "b")
    if a is None or b is None:
        page = workspaces.workspace_page(s.keep, _param(r, "ws"), None)
        return {"workspace": page["workspace"], "choices": page["snapshots"], "changes": None}
    return workspaces.diff_page(s.keep, _param(r, "ws"), a, b)


def _lineage(s: Served, r: Request) -> dict[str, Any]:
    from . import lineage

    found = lineage.lineage_page(s.keep, _param(r, "ws"), _param(r, "ref"), _arg(r, "at"))
    base = f"/workspaces/{url_part(found['workspace'])}/lineage/"
    at = "" if found["at"] is None else "?" + urlencode({"at": found["at"]})
    found["links"] = {
        n["id"]: base + url_path(n["label"]) + at
        for n in found["nodes"]
        if n["kind"] == "data" and n["label"] != found["ref"]
    }
    return found


def _record_dirs(s: Served, r: Request) -> dict[str, Any]:
    from . import recorddirs

    return recorddirs.record_dirs_page(s.keep, _arg(r, "kind"), _arg(r, "after"))


def _record_dir(s: Served, r: Request) -> dict[str, Any]:
    from . import recorddirs

    return recorddirs.record_dir_page(s.keep, _param(r, "uuid"))


def _file_stores(s: Served, r: Request) -> dict[str, Any]:
    from . import filestores

    return filestores.file_stores_page(s.keep, _arg(r, "after"))


def _file_store(s: Served, r: Request) -> dict[str, Any]:
    from . import filestores

    return filestores.file_store_page(
        s.keep, _param(r, "store"), _arg(r, "namespace"), _arg(r, "after")
    )


def _health(s: Served, r: Request) -> dict[str, Any]:
    from . import health

    return health.health_page(s.keep, _arg(r, "pins_after"))


def _verify(s: Served, r: Request) -> dict[str, Any]:
    from . import health

    return health.verify_page(s.keep, _param(r, "name"))


PAGES = [
    Page("/content", _content_list, "content_list.html"),
    Page("/content/{name}", _content, "content.html"),
    Page("/content/{name}/verify", _verify, "verify.html"),
    Page("/tree/{name}", _tree, "tree.html"),
    Page("/tree/{name}/{path:path}", _tree, "tree.html"),
    Page("/runs", _projects, "projects.html"),
    Page("/runs/projects/{project_id:path}", _project, "project.html"),
    Page("/runs/master/{job_id:path}", _master_job, "master_job.html"),
    Page("/runs/chart/{job_id:path}", _chart, "chart.svg"),
    Page("/runs/jobs/{job_id:path}", _execution_job, "execution_job.html"),
    Page("/runs/records/{uid:path}", _record, "record.html"),
    Page("/workspaces", _workspaces, "workspaces.html"),
    Page("/workspaces/{ws}", _workspace, "workspace.html"),
    Page("/workspaces/{ws}/snapshots/{name}", _snapshot, "snapshot.html"),
    Page("/workspaces/{ws}/diff", _diff, "diff.html"),
    Page("/workspaces/{ws}/lineage/{ref:path}", _lineage, "lineage.html"),
    Page("/records", _record_dirs, "record_dirs.html"),
    Page("/records/{uuid}", _record_dir, "record_dir.html"),
    Page("/files", _file_stores, "file_stores.html"),
    Page("/files/{store}", _file_store, "file_store.html"),
    Page("/health", _health, "health.html"),
]
