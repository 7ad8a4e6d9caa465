"""The snapshot manifest: one JSON object in the keep naming each resource's tree and the
lineage as it stood. Its digest is the snapshot's hash, so the same resources and lineage
give the same hash (and a second snapshot of them only adds tags).

Format ``datakeep.workspace-snapshot@v1``: canonical JSON (sorted keys, no spaces, UTF-8)
of ``{"format", "workspace", "resources": [{"name", "role", "path", "tree"}...],
"lineage": {ref: entry}}``, resources sorted by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError

__all__ = ["MANIFEST_FORMAT", "Manifest", "ManifestResource"]

MANIFEST_FORMAT = "datakeep.workspace-snapshot@v1"


@dataclass(frozen=True, slots=True)
class ManifestResource:
    name: str
    role: str
    path: str
    tree: str


@dataclass(frozen=True, slots=True)
class Manifest:
    workspace: str
    resources: tuple[ManifestResource, ...]
    lineage: dict[str, dict[str, Any]]

    def encode(self) -> bytes:
        document = {
            "format": MANIFEST_FORMAT,
            "workspace": self.workspace,
            "resources": [
                {"name": r.name, "role": r.role, "path": r.path, "tree": r.tree}
                for r in sorted(self.resources, key=lambda r: r.name)
            ],
            "lineage": self.lineage,
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> Manifest:
        try:
            document = json.loads(data)
            if document["format"] != MANIFEST_FORMAT:
                raise ValueError(f"format {document['format']!r}")
            resources = tuple(
                ManifestResource(r["name"], r["role"], r["path"], r["tree"])
                for r in document["resources"]
            )
            return cls(document["workspace"], resources, dict(document["lineage"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where} is not a {MANIFEST_FORMAT} manifest: {exc}") from exc

    def trees(self) -> dict[str, str]:
        return {r.name: r.tree for r in self.resources}
