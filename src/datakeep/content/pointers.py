"""Where a blob is: backend keys, the JSON pointers the index stores for them, and the
routers that choose a new blob's key."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from ..digest import parse_digest
from ..errors import InvalidInput
from .model import INLINE_KEY, Router
from .packs import member_key, object_key, pack_member

__all__ = [
    "digest_named_by",
    "fanout_key",
    "key_of_pointer",
    "pointer_of",
    "stored_as_file",
    "tag_router",
]


def pointer_of(key: str) -> str:
    """The JSON pointer the index stores for a blob key (or a pack member's key)."""
    member = pack_member(key)
    if member is not None:
        # what json.dumps writes, without its cost per row (pack keys need no escaping)
        return f'{{"pack": "{member.pack}", "offset": {member.offset}, "length": {member.length}}}'
    return json.dumps({"key": key})


_POINTER_HEAD, _POINTER_TAIL = '{"key": "', '"}'
_PACK_HEAD, _PACK_OFFSET, _PACK_LENGTH = '{"pack": "', '", "offset": ', ', "length": '


def key_of_pointer(pointer: str) -> str:
    """The blob key in a stored pointer (fast for the form :func:`pointer_of` writes)."""
    if (
        pointer.startswith(_POINTER_HEAD)
        and pointer.endswith(_POINTER_TAIL)
        and "\\" not in pointer
        and pointer.count('"') == 4
    ):
        return pointer[len(_POINTER_HEAD) : -len(_POINTER_TAIL)]
    if pointer.startswith(_PACK_HEAD):  # the form pointer_of writes for a pack member
        pack, _, rest = pointer[len(_PACK_HEAD) :].partition(_PACK_OFFSET)
        offset, _, length = rest.partition(_PACK_LENGTH)
        number, end = length[:-1], length[-1:]
        if (
            offset.isdigit()
            and number.isdigit()
            and end == "}"
            and '"' not in pack
            and "\\" not in pack
        ):
            return member_key(pack, int(offset), int(number))
    fields = json.loads(pointer)
    if "pack" in fields:
        return member_key(str(fields["pack"]), int(fields["offset"]), int(fields["length"]))
    return str(fields["key"])


def stored_as_file(key: str) -> bool:
    """Whether the blob behind ``key`` is a backend object of its own (which can be
    hard-linked or re-hashed in place), not a range of a pack nor a row of the index."""
    return key != INLINE_KEY and object_key(key) == key


def fanout_key(digest: str, tags: Mapping[str, str]) -> str:
    """The default router: ``<algorithm>/<first two hex>/<rest>``."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}/{hexpart[:2]}/{hexpart[2:]}"


def tag_router(tag: str, routes: Collection[str]) -> Router:
    """A router that files content under ``<route>/`` when its tag ``tag`` names one of
    ``routes`` (a backend's routes, such as other buckets), else where :func:`fanout_key`
    says."""

    def route(digest: str, tags: Mapping[str, str]) -> str:
        value = tags.get(tag)
        key = fanout_key(digest, tags)
        return f"{value}/{key}" if value in routes else key

    return route


def digest_named_by(key: str) -> str | None:
    """The digest a key of the default router names (``algo/ab/cdef...``, or that under
    one route segment, as :func:`~datakeep.content.tag_router` writes), if it is one."""
    for candidate in (key, key.partition("/")[2]):
        algorithm, _, rest = candidate.partition("/")
        digest = f"{algorithm}:{rest.replace('/', '')}"
        try:
            parse_digest(digest)
        except InvalidInput:
            continue
        if fanout_key(digest, {}) == candidate:
            return digest
    return None
