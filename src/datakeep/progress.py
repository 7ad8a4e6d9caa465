"""Progress reports. The library never prints; the command line turns these into bars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "TransferReport"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of a long operation."""

    phase: str
    """What is happening: ``scan``, ``store``, ``export`` or ``verify``."""
    done: int
    """Items finished so far in this phase."""
    total: int | None
    """Items in this phase, when known."""
    nbytes: int
    """Bytes processed by the step that produced this report."""


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class TransferReport:
    """What a push or pull moved."""

    transferred: int = 0
    """Blobs copied."""
    nbytes: int = 0
    """Bytes copied."""
    already: int = 0
    """Blobs the other side held already (recorded, not copied)."""
