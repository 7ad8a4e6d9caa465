"""Remotes: other directories or buckets that hold copies, and push/pull between them.

The index records which remote holds which blob: a ``placements`` row whose location is
the remote's name, written only after the remote has the blob. Those rows are the
inventory, so a push sends what they lack without listing the remote, and a no-op push
is one query. Transfers are verified (read from the primary verified; pulled bytes are
re-hashed before they are recorded), run in parallel, and resume after an interruption:
a blob already on the remote is never sent twice and never overwritten.

:mod:`.registry` names the remotes, :mod:`.push` and :mod:`.pull` move blobs,
:mod:`.mirrors` serves reads from a remote when the primary copy fails, and
:mod:`.verify` checks a remote against its inventory.
"""

from .mirrors import mirrors_of, open_from_mirror, read_from_mirror
from .pull import pull
from .push import push
from .registry import Remote, TransferReport, add_remote, get_remote, list_remotes, remove_remote
from .repair import RepairReport, repair
from .verify import verify_remote

__all__ = [
    "Remote",
    "RepairReport",
    "TransferReport",
    "add_remote",
    "get_remote",
    "list_remotes",
    "mirrors_of",
    "open_from_mirror",
    "pull",
    "push",
    "read_from_mirror",
    "remove_remote",
    "repair",
    "verify_remote",
]
