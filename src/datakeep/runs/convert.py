"""Checked conversions between run models and index rows: ids, timestamps, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidInput

__all__ = ["check_id", "from_json", "from_micros", "to_json", "to_micros"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def check_id(value: object, what: str) -> str:
    if type(value) is not str or not 0 < len(value) <= 255:
        raise InvalidInput(f"{what} must be a non-empty string of at most 255 characters")
    return value


def to_micros(value: datetime | None, what: str) -> int | None:
    """Microseconds since the epoch; naive datetimes are refused (their zone is a guess)."""
    try:
        since = value - EPOCH  # type: ignore[operator]  # exact: no float seconds on the way
    except TypeError:
        if value is None:
            return None
        if isinstance(value, datetime):  # naive minus aware
            raise InvalidInput(f"{what} must be timezone-aware (e.g. datetime.now(UTC))") from None
        raise InvalidInput(f"{what} must be a datetime, not {type(value).__name__}") from None
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * _MICROSECOND


def to_json(value: Any, what: str) -> str | None:
    """Compact JSON that reads back equal (key order kept); NaN and non-JSON refused."""
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from None


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
