"""Digests as people type them: a whole digest, an alias, or a unique prefix of at least
:data:`MIN_PREFIX` hex digits (with or without ``algorithm:``), as git takes short hashes.

Only the parsing and the verdict on the candidates live here; the lookup of a prefix's
candidates is the caller's (the index through SQLAlchemy, or the command line's quick
reader through the standard library's ``sqlite3``), so both answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..digest import parse_digest
from ..errors import InvalidDigest, InvalidInput, NotFound

__all__ = ["CANDIDATES", "MIN_PREFIX", "one_candidate", "prefix_of"]

MIN_PREFIX = 6
"""Hex digits a digest prefix needs (git's short hashes are 7; 6 names one of 16 million)."""
CANDIDATES = 11
"""Candidates a lookup asks for: ten are listed in an ambiguity's error, one more says
there are more."""


def prefix_of(name: str, algorithm: str) -> tuple[str, bool]:
    """``(digest, False)`` for a whole digest (another algorithm's is an alias to look
    up), or ``(algorithm:hexprefix, True)`` for a prefix whose candidates must be looked
    up; :class:`InvalidDigest` for anything else."""
    if not isinstance(name, str):
        raise InvalidDigest(f"a digest is a string, not {type(name).__name__}")
    named_algorithm, colon, rest = name.rpartition(":")
    if not colon:
        named_algorithm = algorithm
    hexpart = rest.lower()
    if named_algorithm != algorithm or any(c not in "0123456789abcdef" for c in hexpart):
        return str(parse_digest(name)), False  # another algorithm's digest, or a clear error
    full = f"{algorithm}:{hexpart}"
    try:
        return str(parse_digest(full)), False
    except InvalidInput:
        if len(hexpart) < MIN_PREFIX:
            raise InvalidDigest(
                f"{name!r} is not a digest or a prefix of at least {MIN_PREFIX} hex digits"
            ) from None
    return full, True


def one_candidate(name: str, prefix: str, found: Sequence[str]) -> str:
    """The one digest ``found`` for ``prefix`` (up to :data:`CANDIDATES` looked up, in
    order); :class:`NotFound` for none, :class:`InvalidInput` listing them for several."""
    if not found:
        raise NotFound(f"no content starts with {prefix}")
    if len(found) > 1:
        listed = ", ".join(found[:10]) + (" and more" if len(found) > 10 else "")
        raise InvalidInput(f"{name!r} names {len(found)} contents: {listed}")
    return str(found[0])
