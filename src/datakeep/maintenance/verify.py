"""Verify: re-hash stored contents and report what is missing or wrong, without raising."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..content import ContentStore, Problem, Stored
from ..digest import parse_digest
from ..errors import DatakeepError
from ..progress import Progress, ProgressCallback
from ..trees.format import decode_tree

__all__ = ["MISSING", "VerifyReport", "check_stored", "verify_contents"]

MISSING = "blob is missing from the store"


@dataclass(slots=True)
class VerifyReport:
    """The result of re-hashing stored contents."""

    checked: int = 0
    """Contents re-hashed."""
    nbytes: int = 0
    """Bytes re-hashed."""
    problems: list[Problem] = field(default_factory=list)
    """Missing, truncated or corrupted contents; empty when all is well."""

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_contents(
    store: ContentStore,
    digests: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Re-hash ``digests`` (default: everything); report problems instead of raising."""
    report = VerifyReport()
    wanted = None
    if digests is not None:
        wanted = sorted({str(parse_digest(d)) for d in digests})
        for digest in sorted(store.missing(wanted)):
            report.problems.append(Problem(digest, "not in this keep"))
            report.checked += 1
    for item in store.stored(wanted):
        error = check_stored(store, item)
        if error is not None:
            report.problems.append(Problem(item.digest, error))
        report.checked += 1
        report.nbytes += item.size
        if progress is not None:
            progress(Progress("verify", report.checked, None, item.size))
    return report


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
