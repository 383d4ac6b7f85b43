"""A CycloneDX SBOM (JSON, spec 1.6) of a build: the project, its declared dependencies
(from the analysis), and the artifacts built, each with its BLAKE3 and SHA-256 hashes."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from noa_core.build.interface import Artifact

__all__ = ["PURL_TYPES", "write_sbom"]

PURL_TYPES = {"python": "pypi", "rust": "cargo", "go": "golang", "javascript": "npm"}
_EXACT = re.compile(r"^\s*(?:===?|=)?\s*v?(\d[\w.+!-]*)\s*$")


def _exact_version(ecosystem: str, dep: Mapping[str, Any]) -> str | None:
    if dep.get("direct_url"):
        return None
    if ecosystem == "python":
        from noa_core.analysis.python_dependencies import pinned_version

        return pinned_version(dict(dep))
    spec = str(dep.get("spec") or "")
    if ecosystem == "go":
        return spec or None  # go.mod requires an exact module version
    m = _EXACT.match(spec)
    return m.group(1) if m and (ecosystem != "rust" or spec.strip().startswith("=")) else None


def write_sbom(path: Path, *, project: str, version: str | None, dependencies: Mapping[str, Sequence[Mapping[str, Any]]],
               artifacts: Sequence[Artifact]) -> int:
    """Write the SBOM to ``path``; returns how many components it lists."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    def hashes(a: Artifact) -> list[HashType]:
        return [HashType(alg=HashAlgorithm.BLAKE3, content=a.blake3),
                HashType(alg=HashAlgorithm.SHA_256, content=a.sha256)]

    root = Component(name=project, version=version or "0", type=ComponentType.APPLICATION,
                     bom_ref=f"project:{project}")
    bom = Bom()
    bom.metadata.component = root
    bom.register_dependency(root, [])
    seen: set[str] = set()
    count = 0
    for ecosystem, deps in sorted(dependencies.items()):
        ptype = PURL_TYPES.get(ecosystem)
        if ptype is None:
            continue
        for dep in deps:
            name = str(dep.get("name") or "").strip()
            if not name:
                continue
            exact = _exact_version(ecosystem, dep)
            ref = f"{ptype}:{name}@{exact or '*'}"
            if ref in seen:
                continue
            seen.add(ref)
            group = str(dep.get("group") or "")
            optional = bool(group) and group not in ("main", "runtime", "dependencies", "require", "")
            comp = Component(name=name, version=exact, type=ComponentType.LIBRARY, bom_ref=ref,
                             purl=PackageURL(type=ptype, name=name, version=exact),
                             scope=ComponentScope.OPTIONAL if optional else ComponentScope.REQUIRED,
                             description=(f"declared in {dep.get('source')}: {dep.get('spec') or 'any version'}"
                                          + (f" ({group})" if group else "")))
            bom.components.add(comp)
            bom.register_dependency(root, [comp])
            count += 1
    for a in artifacts:
        comp = Component(name=a.name, type=ComponentType.FILE, bom_ref=f"artifact:{a.name}", hashes=hashes(a),
                         description=f"{a.kind} built by NOA ({a.size} bytes)")
        bom.components.add(comp)
        count += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # "incomplete dependency graph" for a project without dependencies
        warnings.simplefilter("ignore", UserWarning)
        path.write_text(JsonV1Dot6(bom).output_as_string(indent=2))
    return count
