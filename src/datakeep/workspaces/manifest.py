"""The snapshot manifest: one JSON object in the keep naming each resource's tree and the
lineage as it stood. Its digest is the snapshot's hash, so the same resources and lineage
give the same hash (and a second snapshot of them only adds tags).

Format ``datakeep.workspace-snapshot@v1``: canonical JSON (sorted keys, no spaces, UTF-8)
of ``{"format", "workspace", "resources": [{"name", "role", "path", "tree"[, "endpoint"]}...],
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
    endpoint: str | None = None
    """The S3-compatible server of an ``s3://`` resource; only written when there is one."""

    def to_json(self) -> dict[str, str]:
        found = {"name": self.name, "role": self.role, "path": self.path, "tree": self.tree}
        if self.endpoint is not None:
            found["endpoint"] = self.endpoint
        return found


@dataclass(frozen=True, slots=True)
class Manifest:
    workspace: str
    resources: tuple[ManifestResource, ...]
    lineage: dict[str, dict[str, Any]]

    def encode(self) -> bytes:
        document = {
            "format": MANIFEST_FORMAT,
            "workspace": self.workspace,
            "resources": [r.to_json() for r in sorted(self.resources, key=lambda r: r.name)],
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
                ManifestResource(r["name"], r["role"], r["path"], r["tree"], r.get("endpoint"))
                for r in document["resources"]
            )
            return cls(document["workspace"], resources, dict(document["lineage"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where} is not a {MANIFEST_FORMAT} manifest: {exc}") from exc

    def trees(self) -> dict[str, str]:
        return {r.name: r.tree for r in self.resources}
