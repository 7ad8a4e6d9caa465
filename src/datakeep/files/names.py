"""Store names, namespaces and file names, checked before they reach the index: each is a
plain name that can never reach outside its namespace."""

from __future__ import annotations

from ..errors import InvalidPath

__all__ = ["check_name", "check_namespace"]


def check_name(name: object, what: str = "file name") -> str:
    """``name`` if it is a plain, non-empty name: no ``/`` or ``\\``, not ``.`` or ``..``,
    no NUL or other control character, at most 255 bytes."""
    if not isinstance(name, str) or not name:
        raise InvalidPath(f"{what} must be a non-empty string, not {name!r}")
    if name in {".", ".."} or "/" in name or "\\" in name:
        raise InvalidPath(f"{what} {name!r} must be a plain name (no '/', '\\\\', '.' or '..')")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidPath(f"{what} {name!r} holds a control character")
    if len(name.encode()) > 255:
        raise InvalidPath(f"{what} is longer than 255 bytes: {name[:40]!r}...")
    return name


def check_namespace(parts: tuple[str, ...]) -> str:
    """The namespace (event, production, ...) as it is stored: its parts joined by '/'."""
    if not parts:
        raise InvalidPath("a file needs a namespace, such as EVENT PRODUCTION")
    return "/".join(check_name(p, "namespace part") for p in parts)
