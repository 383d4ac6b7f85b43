"""What a build produces: artifacts (content-hashed), the steps that made them, an SBOM."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from noa_core.errors import NoaError

__all__ = ["Artifact", "BuildError", "BuildResult", "BuildStatus", "BuildStep", "hash_file"]

BuildStatus = Literal["ok", "failed", "skipped"]


class BuildError(NoaError):
    """A build could not be attempted for a reason that is NOA's or the host's."""


def hash_file(path: Path) -> tuple[str, str]:
    """(BLAKE3 hex, SHA-256 hex) of a file, read once."""
    import hashlib

    from blake3 import blake3

    b3, sha = blake3(), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            b3.update(chunk)
            sha.update(chunk)
    return b3.hexdigest(), sha.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """One built file, stored content-addressed under the build's output directory."""

    name: str
    kind: str  # wheel | sdist | go-binary | rust-binary | rust-library | file
    path: str
    size: int
    blake3: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "size": self.size,
                "blake3": self.blake3, "sha256": self.sha256}


@dataclass(frozen=True)
class BuildStep:
    """One tool run: ``pep517`` (wheel + sdist), ``cargo``, ``go`` or the manifest's command."""

    tool: str
    status: BuildStatus
    reason: str = ""
    command: tuple[str, ...] = ()
    seconds: float = 0.0
    log: str = ""
    isolation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "status": self.status, "reason": self.reason, "command": list(self.command),
                "seconds": round(self.seconds, 3), "log": self.log, "isolation": self.isolation}


@dataclass(frozen=True)
class BuildResult:
    status: BuildStatus
    reason: str = ""
    artifacts: tuple[Artifact, ...] = ()
    steps: tuple[BuildStep, ...] = ()
    sbom: str | None = None
    sbom_components: int = 0
    out_dir: str = ""
    seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "artifacts": [a.as_dict() for a in self.artifacts],
                "steps": [s.as_dict() for s in self.steps], "sbom": self.sbom,
                "sbom_components": self.sbom_components, "out_dir": self.out_dir,
                "seconds": round(self.seconds, 3), **dict(self.extra)}
