"""Verify: re-hash stored contents and report what is missing or wrong, without raising."""

from __future__ import annotations

from collections.abc import Iterable

from ..content import ContentStore, Problem, Stored, VerifyReport
from ..digest import parse_digest
from ..errors import DatakeepError
from ..progress import Progress, ProgressCallback
from ..trees.format import TreeEntry, decode_tree

__all__ = ["MISSING", "VerifyReport", "check_stored", "tree_problems", "verify_contents"]

MISSING = "blob is missing from the store"
NO_LOCAL_COPY = "no local copy: only a remote holds it ('datakeep pull' or 'repair' fetch it)"


def verify_contents(
    store: ContentStore,
    digests: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    shallow: bool = False,
) -> VerifyReport:
    """Re-hash ``digests`` (default: everything) and, unless ``shallow``, every file of
    each good tree among ``digests`` (everything covers them anyway); report problems
    instead of raising."""
    report = VerifyReport()
    trees: list[str] = []
    wanted = None if digests is None else sorted({str(parse_digest(d)) for d in digests})
    seen = set()
    for item in store.stored(wanted):
        seen.add(item.digest)
        error = check_stored(store, item)
        if error is not None:
            report.problems.append(Problem(item.digest, error))
        elif item.kind == "tree" and wanted is not None and not shallow:
            trees.append(item.digest)
        report.checked += 1
        report.nbytes += item.size
        if progress is not None:
            progress(Progress("verify", report.checked, None, item.size))
    absent = store.without_local_copy() if wanted is None else set(wanted) - seen
    for digest, error in sorted(_absence(store, absent).items()):
        report.problems.append(Problem(digest, error))
        report.checked += 1
    checked = set(wanted or ())
    for tree in trees:
        entries = decode_tree(store.get(tree), store.algorithm)
        files = [e for e in entries if e.digest is not None and e.digest not in checked]
        report.problems += tree_problems(store, tree, files)
        checked.update(e.digest for e in files if e.digest is not None)
        report.checked += len({e.digest for e in files})
        report.nbytes += sum({e.digest: e.size for e in files}.values())
    return report


def tree_problems(store: ContentStore, tree: str, entries: Iterable[TreeEntry]) -> list[Problem]:
    """What is wrong with the files ``entries`` of ``tree`` names, one problem per path
    (each content re-hashed once)."""
    paths: dict[str, list[str]] = {}
    for entry in entries:
        if entry.digest is not None:
            paths.setdefault(entry.digest, []).append(entry.path)
    stored = list(store.stored(sorted(paths)))
    errors = _absence(store, set(paths) - {item.digest for item in stored})
    for item in stored:
        error = check_stored(store, item)
        if error is not None:
            errors[item.digest] = error
    return [
        Problem(digest, error, f"{tree}/{path}")
        for digest, error in sorted(errors.items())
        for path in sorted(paths[digest])
    ]


def _absence(store: ContentStore, digests: set[str]) -> dict[str, str]:
    """Why each of ``digests``, which have no local copy, is absent."""
    unknown = store.missing(digests)
    return {d: "not in this keep" if d in unknown else NO_LOCAL_COPY for d in digests}


def check_stored(store: ContentStore, item: Stored) -> str | None:
    """What is wrong with a stored content (a tree must also parse), or None."""
    try:
        store.check(item)
        if item.kind == "tree":
            decode_tree(store.get(item.digest), store.algorithm)
    except FileNotFoundError:
        return MISSING
    except DatakeepError as exc:
        return str(exc)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None
