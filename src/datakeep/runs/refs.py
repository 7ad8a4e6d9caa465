"""References to payloads: issued by the store (``request-config/<id>``,
``record-data/<id>``) or digests; never a path or a URL, so nothing a caller passes can
name a place outside the keep, and what is kept as a key is always one of these forms."""

from __future__ import annotations

from ..digest import parse_digest
from ..errors import InvalidInput
from .convert import check_id

__all__ = ["RECORD_DATA", "REQUEST_CONFIG", "issued", "plain_id"]

REQUEST_CONFIG = "request-config"
RECORD_DATA = "record-data"


def plain_id(value: object, what: str) -> str:
    """An id that is not path- or URL-like: no ``/``, ``\\``, NUL or ``:``, not ``.``/``..``."""
    text = check_id(value, what)
    if text in (".", "..") or any(c in text for c in "/\\\x00:"):
        raise InvalidInput(f"{what} {text!r} looks like a path or a URL; use a plain id")
    return text


def issued(value: object, kind: str, what: str, plain_ids: bool = False) -> str:
    """``value`` if it is ``<kind>/<plain id>``, a digest, or (with ``plain_ids``) a
    plain id; anything else is refused with :class:`InvalidInput`."""
    text = check_id(value, what)
    prefix, _, rest = text.partition("/")
    if prefix == kind and rest:
        plain_id(rest, what)
        return text
    if ":" in text and "/" not in text:
        try:
            parse_digest(text)
            return text
        except InvalidInput:
            pass
    if plain_ids:
        return plain_id(text, what)
    raise InvalidInput(
        f"{what} {text!r} is not a reference this store issued ({kind}/<id>) or a digest"
    )
