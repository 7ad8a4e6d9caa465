"""Digests: content names of the form ``algorithm:hex``.

BLAKE3 is the default (7 GB/s per thread here); SHA-256 is there for interoperability with
tools that publish SHA-256 sums, MD5 only where a peer asks for it (S3 ETags, old
manifests). The algorithm is part of every digest, so a digest is never ambiguous.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from blake3 import blake3

from .errors import InvalidDigest, UnknownAlgorithm

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "Digest",
    "Hasher",
    "check_algorithm",
    "hash_bytes",
    "hash_file",
    "new_hasher",
    "parse_digest",
]

DEFAULT_ALGORITHM = "blake3"
# hex length per algorithm
ALGORITHMS: dict[str, int] = {"blake3": 64, "sha256": 64, "md5": 32}
_HEX = re.compile(r"[0-9a-f]+\Z")


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


_FACTORIES: dict[str, Callable[[], Hasher]] = {
    "blake3": blake3,
    "sha256": hashlib.sha256,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}


def new_hasher(algorithm: str) -> Hasher:
    """A fresh incremental hasher for ``algorithm``."""
    return _FACTORIES[check_algorithm(algorithm)]()


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if datakeep provides it, else raise :class:`UnknownAlgorithm`."""
    if algorithm not in ALGORITHMS:
        raise UnknownAlgorithm(
            f"unknown hash algorithm {algorithm!r}; use one of {sorted(ALGORITHMS)}"
        )
    return algorithm


@dataclass(frozen=True, slots=True)
class Digest:
    """A parsed digest."""

    algorithm: str
    """``blake3``, ``sha256`` or ``md5``."""
    hex: str
    """Lower-case hexadecimal hash value."""

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(text: str) -> Digest:
    """Parse and validate ``algorithm:hex``; raise :class:`InvalidDigest` otherwise."""
    if not isinstance(text, str):
        raise InvalidDigest(f"a digest must be a string, not {type(text).__name__}")
    algorithm, sep, hexpart = text.partition(":")
    if not sep:
        raise InvalidDigest(f"malformed digest {text!r}: expected 'algorithm:hex'")
    check_algorithm(algorithm)
    if len(hexpart) != ALGORITHMS[algorithm] or not _HEX.match(hexpart):
        raise InvalidDigest(
            f"malformed digest {text!r}: {algorithm} needs {ALGORITHMS[algorithm]} "
            "lower-case hex digits"
        )
    return Digest(algorithm, hexpart)


def hash_bytes(data: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The digest string of ``data``."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


# Below this, mapping a file costs more than reading it.
_MMAP_MIN = 1 << 20


def hash_file(path: str | os.PathLike[str], algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The digest string of a file's bytes.

    BLAKE3 hashes large files memory-mapped and on every core, without copying them
    through Python; the others read in 1 MiB chunks.
    """
    check_algorithm(algorithm)
    if algorithm == "blake3" and os.path.getsize(path) >= _MMAP_MIN:
        mapped = blake3(max_threads=blake3.AUTO)
        mapped.update_mmap(os.fspath(path))
        return f"blake3:{mapped.hexdigest()}"
    hasher = new_hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_MMAP_MIN):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"
