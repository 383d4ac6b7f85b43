"""Stage 5's build: wheel + sdist (PEP 517), ``cargo build``, ``go build`` or the command of
noa.yaml, every one isolated (no network, a work copy, limits); the artifacts stored
under ``out_dir`` by content (BLAKE3) and described, with the project's dependencies, in
a CycloneDX SBOM (``out_dir/sbom.cdx.json``).

    build_project(tree, manifest, out_dir, limits) -> BuildResult
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from noa_core.build.interface import (
    Artifact,
    BuildError,
    BuildResult,
    BuildStep,
    hash_file,
)
from noa_core.config import ExecLimits
from noa_core.deps.layout import DepsLayout
from noa_core.isolation import make_work_copy
from noa_core.manifest import NoaManifest

__all__ = ["Artifact", "BuildError", "BuildResult", "BuildStep", "build_project", "hash_file"]

SBOM_NAME = "sbom.cdx.json"
MAX_ARTIFACTS = 200


def _manifest_command(work: Path, manifest: NoaManifest, limits: ExecLimits, log_dir: Path,
                      hide_paths: tuple[str, ...], deps: DepsLayout) -> tuple[BuildStep, list[tuple[str, Path]]]:
    from noa_core.build.native import run_build_command

    argv = list(manifest.build.command or [])
    log = log_dir / "build-command.log"
    build = run_build_command(argv, work, limits, log, deps=deps, hide_paths=hide_paths)
    res = build.result
    if res is None:
        return BuildStep("noa.yaml", "failed", build.reason, tuple(argv), 0.0, str(log)), []
    if not res.ok:
        why = "the build command timed out" if res.timed_out else f"the build command exited {res.returncode}"
        return BuildStep("noa.yaml", "failed", why, build.argv, res.seconds, str(log), res.isolation), []
    built: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(work):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(work).as_posix()
            if any(fnmatch.fnmatch(rel, g) for g in manifest.build.artifacts) and not path.is_symlink():
                built.append(("file", path))
    reason = f"{len(built)} artifact(s) matched {', '.join(manifest.build.artifacts) or 'no globs'}"
    return BuildStep("noa.yaml", "ok", reason, build.argv, res.seconds, str(log), res.isolation), built


def _store(built: Sequence[tuple[str, Path]], out_dir: Path) -> list[Artifact]:
    """Copy each file to ``out_dir/<blake3[:16]>/<name>``; identical content is stored once."""
    artifacts: list[Artifact] = []
    for kind, src in built[:MAX_ARTIFACTS]:
        b3, sha = hash_file(src)
        dest = out_dir / "artifacts" / b3[:16] / src.name
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        artifacts.append(Artifact(src.name, kind, str(dest), dest.stat().st_size, b3, sha))
    return artifacts


def build_project(tree: Path, manifest: NoaManifest, out_dir: Path, limits: ExecLimits, *,
                  dependencies: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                  hide_paths: Sequence[str] = (), work_parent: Path | None = None,
                  cache_dir: Path | None = None, python_env: Any = None, deps_home: Path | None = None
                  ) -> BuildResult:
    """Build ``tree`` (never touched: the build runs in a work copy) into ``out_dir``.

    What is built: ``build.command`` of noa.yaml when set (its ``artifacts`` globs collect
    the results); otherwise every kind found - a Python project (pyproject.toml/setup.py:
    sdist + wheel), a crate (Cargo.toml), a Go module (go.mod). ``dependencies`` is the
    analysis's list per ecosystem (read from the tree when not given), for the SBOM.
    ``cache_dir`` keeps Python build environments between builds (default ``out_dir/.buildenv``).
    ``python_env`` (a ready :class:`noa_core.pyenv.provider.EnvChoice`) builds a Python project
    with ``uv build`` from the project's own wheelhouse instead of NOA's build backend.
    ``deps_home`` (NOA_HOME) holds the cargo / go / npm dependency cache shared with the tests.
    """
    t0 = time.perf_counter()
    tree = Path(tree).resolve()
    if not tree.is_dir():
        raise BuildError(f"{tree} is not a directory")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    hide = tuple(str(p) for p in hide_paths)
    from noa_core.build.native import cargo_build, go_build
    from noa_core.build.python import is_python_project, pep517_build

    deps = DepsLayout.resolve(deps_home, fallback=out_dir)
    builders = []
    if manifest.build.command:
        builders.append(lambda w: _manifest_command(w, manifest, limits, log_dir, hide, deps))
    else:
        if is_python_project(tree) and python_env is not None and python_env.ready and python_env.wheelhouse:
            from noa_core.build.python import uv_build
            from noa_core.pyenv.interpreter import find_uv

            builders.append(lambda w: uv_build(w, limits, log_dir, python=python_env.env.python, uv=find_uv(),
                                               wheelhouse=python_env.wheelhouse,
                                               readonly=python_env.readonly_paths, hide_paths=hide))
        elif is_python_project(tree):
            builders.append(lambda w: pep517_build(w, limits, log_dir, hide_paths=hide,
                                                      cache_dir=cache_dir or out_dir / ".buildenv"))
        if (tree / "Cargo.toml").is_file():
            builders.append(lambda w: cargo_build(w, limits, log_dir, deps=deps, hide_paths=hide))
        if (tree / "go.mod").is_file():
            builders.append(lambda w: go_build(w, limits, log_dir, deps=deps, hide_paths=hide))
    if not builders:
        return BuildResult("skipped", "nothing to build (no build.command in noa.yaml, no pyproject.toml, "
                                      "setup.py, Cargo.toml or go.mod)", out_dir=str(out_dir),
                           seconds=time.perf_counter() - t0)

    steps: list[BuildStep] = []
    artifacts: list[Artifact] = []
    for build in builders:
        work = make_work_copy(tree, work_parent or out_dir / "work")
        try:
            step, built = build(work)
            steps.append(step)
            artifacts.extend(_store(built, out_dir))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if work_parent is None:
        shutil.rmtree(out_dir / "work", ignore_errors=True)

    if dependencies is None:
        from noa_core.analysis.dependencies import DependenciesAnalyzer

        dependencies = {k: v for k, v in DependenciesAnalyzer().analyze(tree).data.items()
                        if isinstance(v, list)}
    from noa_core.build.sbom import write_sbom

    sbom = out_dir / SBOM_NAME
    components = write_sbom(sbom, project=manifest.name, version=manifest.version, dependencies=dependencies,
                            artifacts=artifacts)
    failed = [s for s in steps if s.status == "failed"]
    ran = [s for s in steps if s.status != "skipped"]
    if failed:
        status, reason = "failed", "; ".join(f"{s.tool}: {s.reason}" for s in failed)
    elif not ran:
        status, reason = "skipped", "; ".join(f"{s.tool}: {s.reason}" for s in steps)
    else:
        status, reason = "ok", f"{len(artifacts)} artifact(s): " + ", ".join(a.name for a in artifacts[:6])
    result = BuildResult(status, reason, tuple(artifacts), tuple(steps), str(sbom), components, str(out_dir),
                         time.perf_counter() - t0)
    (out_dir / "build.json").write_text(json.dumps(result.as_dict(), indent=2))
    return result
