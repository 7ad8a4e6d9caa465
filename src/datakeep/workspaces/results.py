"""Results are additive: at each snapshot, the new files of a ``results`` resource move
into a subdirectory named for that snapshot, and earlier ones stay where they went.

The subdirectory is named by a template (default ``snapshots/{date}-{time}-{tag}``;
``{date}``, ``{time}``, ``{tag}``, ``{user}`` and ``{number}`` are filled in). The
template's first directory holds every snapshot's results, so what is already there is
never moved again. A snapshot that fails after moving results moves them back.
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

from ..errors import InvalidInput
from ..trees.format import check_relative_path

__all__ = ["Moves", "new_results", "results_home", "subdir_for"]

Moves = list[tuple[Path, Path]]


def results_home(template: str) -> str:
    """The top directory of every snapshot's results (``snapshots``)."""
    return template.split("/", 1)[0]


def subdir_for(template: str, tag: str | None, number: int, when: float) -> str:
    """The results subdirectory of a snapshot, checked to be a clean relative path."""
    local = time.localtime(when)
    try:
        name = template.format(
            date=time.strftime("%Y-%m-%d", local),
            time=time.strftime("%H%M%S", local),
            tag=tag or "untagged",
            user=getpass.getuser(),
            number=number,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(f"results template {template!r}: {exc!r}") from None
    check_relative_path(name)
    if "/" not in name:
        raise InvalidInput(f"results template {template!r} must name a subdirectory of a directory")
    return name


def new_results(resource: Path, template: str) -> list[str]:
    """The top-level names of a results resource that no snapshot has claimed yet."""
    if not resource.is_dir():
        return []
    home = results_home(template)
    return sorted(name for name in os.listdir(resource) if name != home)


def move_results(resource: Path, names: list[str], subdir: str) -> Moves:
    """Move ``names`` into ``subdir`` (a fresh one: ``-2``, ``-3``... if taken); the
    moves made, for :func:`undo`. A failure undoes the moves already made."""
    target = resource / subdir
    n = 1
    while target.exists():
        n += 1
        target = resource / f"{subdir}-{n}"
    target.mkdir(parents=True)
    moves: Moves = []
    try:
        for name in names:
            source, dest = resource / name, target / name
            os.rename(source, dest)
            moves.append((source, dest))
    except BaseException:
        undo(moves)
        raise
    return moves


def undo(moves: Moves) -> None:
    """Put moved results back where they were, and remove the subdirectory if empty."""
    for source, dest in reversed(moves):
        os.rename(dest, source)
    if moves:
        folder = moves[0][1].parent
        while folder.name and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
            if folder == moves[0][0].parent:
                break
