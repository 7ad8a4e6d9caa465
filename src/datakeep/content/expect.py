"""A digest the caller already knows (``put(data, expect="sha256:...")``): checked in the
same pass that names the content, before anything is published.

A service that names its contents by SHA-256 or MD5 keeps those names: the expected
digest is hashed alongside the keep's own (one more hasher fed the same chunks, so a put
costs about one extra SHA-256 or MD5 pass of the data, never a second read), compared
before the blob is published, and, when it is of another algorithm than the keep's,
recorded as an alias of the content (table ``aliases``) that every lookup understands.
A mismatch raises :class:`~datakeep.errors.IntegrityError` and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..digest import Hasher, new_hasher, parse_digest
from ..errors import IntegrityError

__all__ = ["Expected", "expectation"]


@dataclass(frozen=True, slots=True)
class Expected:
    """A caller's expected digest of the data it puts, parsed and checked to be valid."""

    digest: str
    """``algorithm:hex`` as the caller gave it (lower-case hex)."""
    algorithm: str
    """Its algorithm: the keep's own, or another one to hash alongside."""
    own: bool
    """True if it is in the keep's own algorithm: then it is compared with the content's
    digest itself, with nothing more to hash and no alias to record."""

    @property
    def alias(self) -> str | None:
        """The alias to record for the content, or None for the keep's own algorithm."""
        return None if self.own else self.digest

    def side_hasher(self) -> Hasher | None:
        """A fresh hasher to feed the same bytes as the keep's, or None if none is needed."""
        return None if self.own else new_hasher(self.algorithm)

    def check(self, digest: str, side: Hasher | None) -> None:
        """Compare with what the bytes hashed to: ``digest`` (the keep's) and ``side``
        (from :meth:`side_hasher`); :class:`IntegrityError` if they are not as expected."""
        actual = digest if side is None else f"{self.algorithm}:{side.hexdigest()}"
        if actual != self.digest:
            raise IntegrityError(
                f"the data hashes to {actual}, not the expected {self.digest}: nothing was stored"
            )

    def check_bytes(self, digest: str, data: bytes) -> None:
        """:meth:`check` for bytes held whole, whose keep digest is ``digest``."""
        side = self.side_hasher()
        if side is not None:
            side.update(data)
        self.check(digest, side)


def expectation(expect: str | None, algorithm: str) -> Expected | None:
    """``expect`` parsed for a keep of ``algorithm`` (None if not given);
    :class:`~datakeep.errors.InvalidDigest` or :class:`~datakeep.errors.UnknownAlgorithm`
    before anything is read if it is not a valid digest."""
    if expect is None:
        return None
    parsed = parse_digest(expect)
    return Expected(str(parsed), parsed.algorithm, parsed.algorithm == algorithm)
