"""Resolving ``datakeep://`` paths to nodes: contents by digest or unique prefix, the
newest content with a tag, files and directories inside trees; workspace snapshots and
file stores through :mod:`.features`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from sqlalchemy import select

from ..content import Content
from ..errors import InvalidPath, NotFound
from ..index import contents, tags
from ..keep import Keep
from ..trees.format import TreeEntry, decode_tree
from .features import FileStores, Workspaces
from .nodes import DirNode, FileNode, Node
from .paths import NAMESPACES, KeepPath, tag_name, tag_part
from .trees import DIRECTORY, TreeIndex

__all__ = ["Resolver"]

_TREES_KEPT = 32
_CONTENTS_KEPT = 4096


class Resolver:
    """Finds what paths name in one keep; decoded trees are kept (they never change)."""

    def __init__(self, keep: Keep, files_store: str | None = None) -> None:
        self.keep = keep
        self._trees: OrderedDict[str, TreeIndex] = OrderedDict()
        self._contents: OrderedDict[str, Content] = OrderedDict()
        self._lock = threading.Lock()
        self.workspaces = Workspaces(keep, self.tree_node, self.lazy_dir)
        self.file_stores = FileStores(keep, files_store)

    def node(self, path: KeepPath) -> Node:
        parts = path.parts
        if not parts:
            return DirNode(lambda: [(name, self.lazy_dir((name,))) for name in NAMESPACES])
        head, rest = parts[0], parts[1:]
        if head == "tag":
            if not rest:
                return DirNode(self._tags)
            return self.content_node(self._newest_tagged(*tag_part(rest[0])), rest[1:])
        if head == "ws":
            return self.workspaces.node(rest)
        if head == "files":
            return self.file_stores.node(rest)
        if ":" in head or not head.strip("0123456789abcdef"):  # a digest or a prefix
            return self.content_node(self._content(head), rest)
        raise NotFound(
            f"no {path.name!r}: a datakeep path starts with a digest, tag/, ws/ or files/"
        )

    def lazy_dir(self, parts: tuple[str, ...], created: float | None = None) -> DirNode:
        """A directory of a listing, resolved only when it is listed itself."""

        def children() -> Iterable[tuple[str, Node]]:
            node = self.node(KeepPath("/".join(parts), parts))
            return node.children() if isinstance(node, DirNode) else []

        return DirNode(children, created=created)

    # -- contents --------------------------------------------------------------------------
    def _content(self, name: str) -> Content:
        """The content a digest, or a unique prefix of one as the command line takes it
        (6+ hex digits, with or without the algorithm), names."""
        name = self.keep.store.resolve(name)
        with self._lock:
            known = self._contents.get(name)
        if known is None:  # a content's size, kind and time never change: asked once
            known = self.keep.info(name)
            with self._lock:
                self._contents[name] = known
                while len(self._contents) > _CONTENTS_KEPT:
                    self._contents.popitem(last=False)
        return known

    def content_node(self, content: Content, rest: tuple[str, ...]) -> Node:
        if content.kind == "tree":
            return self.tree_node(content.digest, rest, content.created_at)
        if rest:
            raise NotFound(f"{content.digest} is a file, not a directory: no {'/'.join(rest)!r}")
        return FileNode(content.digest, content.size, created=content.created_at)

    def _newest_tagged(self, key: str, value: str) -> Content:
        query = (
            select(contents.c.digest)
            .join(tags, tags.c.digest == contents.c.digest)
            .where(tags.c.key == key, tags.c.value == value)
            .order_by(contents.c.created_at.desc(), contents.c.digest.desc())
            .limit(1)
        )
        with self.keep.db.read("finding the newest tagged content") as conn:
            digest = conn.execute(query).scalar()
        if digest is None:
            raise NotFound(f"no content tagged {key}={value}")
        return self.keep.info(digest)

    def _tags(self) -> Iterator[tuple[str, Node]]:
        query = select(tags.c.key, tags.c.value).distinct().order_by(tags.c.key, tags.c.value)
        with self.keep.db.read("listing tags") as conn:
            pairs = conn.execute(query).all()
        for key, value in pairs:
            yield tag_name(key, value), self.content_node(self._newest_tagged(key, value), ())

    # -- trees -----------------------------------------------------------------------------
    def tree_root(self, digest: str, created: float | None = None) -> DirNode:
        return DirNode(lambda: self._children(digest, "", created), digest, created)

    def tree_node(self, digest: str, rest: tuple[str, ...], created: float | None = None) -> Node:
        if not rest:
            return self.tree_root(digest, created)
        index = self._tree(digest)
        real, entry = index.lookup("/".join(rest), self._link_target)
        if entry is DIRECTORY:
            return DirNode(lambda: self._children(digest, real, created), created=created)
        return _file(entry, created)

    def _children(
        self, digest: str, directory: str, created: float | None
    ) -> list[tuple[str, Node]]:
        index = self._tree(digest)
        found: list[tuple[str, Node]] = []
        for name, entry in sorted(index.dirs[directory].items()):
            path = f"{directory}/{name}" if directory else name
            try:
                node = self.tree_node(digest, tuple(path.split("/")), created)
            except (NotFound, InvalidPath):
                continue  # a dangling link, or one out of the tree: not listed
            if entry is not None and entry.kind == "l" and isinstance(node, DirNode):
                continue  # reachable by its path, but never walked into: links may loop
            found.append((name, node))
        return found

    def _tree(self, digest: str) -> TreeIndex:
        with self._lock:
            index = self._trees.get(digest)
            if index is not None:
                self._trees.move_to_end(digest)
                return index
        index = TreeIndex(digest, decode_tree(self.keep.get(digest), self.keep.algorithm))
        with self._lock:
            self._trees[digest] = index
            while len(self._trees) > _TREES_KEPT:
                self._trees.popitem(last=False)
        return index

    def _link_target(self, entry: TreeEntry) -> str:
        assert entry.digest is not None
        return self.keep.get(entry.digest).decode("utf-8", "surrogateescape")


def _file(entry: TreeEntry | None, created: float | None) -> FileNode:
    assert entry is not None and entry.digest is not None
    return FileNode(entry.digest, entry.size, entry.mode, created)
