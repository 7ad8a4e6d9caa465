"""A record's identity: the digest of its kind and configuration as canonical JSON.

The profile is pinned, so the same configuration gives the same identity on every
machine and Python version (tests hold vectors): keys sorted by code point, no spaces,
strings as UTF-8 (not ``\\u`` escapes) with only what JSON requires escaped, integers as
they are, floats in their shortest round-trip form (``1.0`` stays ``1.0``, distinct from
``1``; ``-0.0`` is ``0.0``), no NaN or infinity, only str keys, tuples as lists.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..digest import hash_bytes
from ..errors import InvalidInput

__all__ = ["canonical_json", "identity_of"]


def _checked(value: Any, where: str) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{where} is {value}: JSON has no NaN or infinity")
        return 0.0 if value == 0 else value
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise InvalidInput(f"{where} has a key {key!r}: keys must be strings")
        return {k: _checked(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_checked(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InvalidInput(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text (see the module docstring)."""
    return json.dumps(
        _checked(value, "config"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def identity_of(kind: str, config: Any) -> str:
    """The identity of a record of ``kind`` with ``config``: a BLAKE3 digest."""
    return hash_bytes(canonical_json({"config": config, "kind": kind}).encode())
