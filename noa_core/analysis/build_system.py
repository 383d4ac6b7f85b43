"""Build systems at the root of a tree, and the command that builds it.

Python: the PEP 517 ``build-backend`` of pyproject.toml names the tool (setuptools,
hatchling, flit, poetry, pdm, maturin, scikit-build-core, meson-python ...); a
pyproject.toml without one, or a bare setup.py / setup.cfg, means setuptools (the
PEP 517 fallback). Other ecosystems by their manifest: Cargo.toml, go.mod,
package.json (npm / yarn / pnpm / bun by lock file or ``packageManager``), Makefile,
CMakeLists.txt, pom.xml, build.gradle, meson.build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noa_core.sourcetree import safe_fs
from noa_core.analysis import _manifests as m
from noa_core.analysis import go_files
from noa_core.analysis.interface import AnalyzerResult

PYTHON_BACKENDS: dict[str, str] = {
    "setuptools.build_meta": "setuptools",
    "setuptools.build_meta:__legacy__": "setuptools",
    "hatchling.build": "hatchling",
    "flit_core.buildapi": "flit",
    "flit.buildapi": "flit",
    "poetry.core.masonry.api": "poetry",
    "poetry.masonry.api": "poetry",
    "pdm.backend": "pdm",
    "pdm.pep517.api": "pdm",
    "maturin": "maturin",
    "scikit_build_core.build": "scikit-build-core",
    "mesonpy": "meson-python",
    "uv_build": "uv",
    "sipbuild.api": "sip",
    "enscons.api": "enscons",
    "pbr.build": "pbr",
}

PYTHON_BUILD = ["python", "-m", "build"]

# Order of preference for the primary system (most specific first).
PRIORITY = ("maturin", "scikit-build-core", "meson-python", "setuptools", "hatchling", "flit",
            "poetry", "pdm", "uv", "cargo", "go", "npm", "yarn", "pnpm", "bun", "maven",
            "gradle", "meson", "cmake", "make")


class BuildSystemAnalyzer:
    name = "build_system"
    version = "1"

    def analyze(self, tree: Path) -> AnalyzerResult:
        systems: list[dict[str, Any]] = []
        problems: list[str] = []

        def add(system: str, manifest: str, command: list[list[str]], artifacts: str,
                **extra: Any) -> None:
            systems.append({"system": system, "manifest": manifest,
                            "build_steps": [list(step) for step in command],
                            "artifacts": artifacts, **extra})

        self._python(tree, add, problems)
        if m.exists(tree, "Cargo.toml"):
            self._cargo(tree, add, problems)
        if m.exists(tree, "go.mod"):
            add("go", "go.mod", [["go", "build", "./..."]], "binary" if go_has_main(tree)
                else "library")
        if m.exists(tree, "package.json"):
            self._node(tree, add, problems)
        if m.exists(tree, "pom.xml"):
            add("maven", "pom.xml", [["mvn", "-B", "package"]], "jar")
        for gradle in ("build.gradle.kts", "build.gradle"):
            if m.exists(tree, gradle):
                cmd = ["./gradlew", "build"] if m.exists(tree, "gradlew") else ["gradle", "build"]
                add("gradle", gradle, [cmd], "jar")
                break
        if m.exists(tree, "meson.build") and not any(s["system"] == "meson-python" for s in systems):
            add("meson", "meson.build", [["meson", "setup", "builddir"],
                                         ["meson", "compile", "-C", "builddir"]], "binary")
        if m.exists(tree, "CMakeLists.txt"):
            add("cmake", "CMakeLists.txt", [["cmake", "-S", ".", "-B", "build"],
                                            ["cmake", "--build", "build"]], "binary")
        for makefile in ("GNUmakefile", "makefile", "Makefile"):
            if m.exists(tree, makefile):
                add("make", makefile, [["make"]], "unknown")
                break

        systems.sort(key=lambda s: PRIORITY.index(s["system"]) if s["system"] in PRIORITY
                     else len(PRIORITY))
        primary = systems[0] if systems else None
        data: dict[str, Any] = {
            "systems": [s["system"] for s in systems],
            "details": systems,
            "primary": primary["system"] if primary else None,
            "build_command": primary["build_steps"][-1] if primary else None,
            "build_steps": primary["build_steps"] if primary else [],
            "artifacts": primary["artifacts"] if primary else None,
        }
        if problems:
            return AnalyzerResult(self.name, "unknown", reason="; ".join(problems), data=data)
        return AnalyzerResult(self.name, "ok",
                              reason="" if primary else "no build system detected", data=data)

    # -- ecosystems -------------------------------------------------------------------

    @staticmethod
    def _python(tree: Path, add: Any, problems: list[str]) -> None:
        has_setup_py = m.exists(tree, "setup.py")
        has_setup_cfg = m.exists(tree, "setup.cfg")
        if m.exists(tree, "pyproject.toml"):
            try:
                doc = m.load_toml(tree, "pyproject.toml")
            except m.ManifestError as exc:
                problems.append(str(exc))
                return
            build = m.table(doc, "build-system")
            backend = build.get("build-backend")
            requires = m.as_list(build.get("requires"))
            if isinstance(backend, str) and backend:
                system = PYTHON_BACKENDS.get(backend) or PYTHON_BACKENDS.get(backend.split(":")[0]) \
                    or backend
                add(system, "pyproject.toml", [PYTHON_BUILD], "wheel+sdist", backend=backend,
                    requires=[str(r) for r in requires])
                return
            if build or has_setup_py or has_setup_cfg or m.table(doc, "project"):
                add("setuptools", "pyproject.toml", [PYTHON_BUILD], "wheel+sdist",
                    backend="setuptools.build_meta:__legacy__ (PEP 517 default)",
                    requires=[str(r) for r in requires])
            return
        if has_setup_py or has_setup_cfg:
            add("setuptools", "setup.py" if has_setup_py else "setup.cfg", [PYTHON_BUILD],
                "wheel+sdist", backend="setuptools.build_meta:__legacy__ (PEP 517 default)")

    @staticmethod
    def _cargo(tree: Path, add: Any, problems: list[str]) -> None:
        try:
            doc = m.load_toml(tree, "Cargo.toml")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        if not m.table(doc, "package") and m.table(doc, "workspace"):
            artifacts = "workspace"
        elif doc.get("bin") or m.exists(tree, "src/main.rs"):
            artifacts = "binary"
        else:
            artifacts = "library"
        add("cargo", "Cargo.toml", [["cargo", "build", "--release"]], artifacts)

    @staticmethod
    def _node(tree: Path, add: Any, problems: list[str]) -> None:
        try:
            pkg = m.load_json(tree, "package.json")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        if not isinstance(pkg, dict):
            problems.append("package.json: not a JSON object")
            return
        manager = "npm"
        declared = pkg.get("packageManager")
        if isinstance(declared, str) and declared.split("@")[0] in ("npm", "yarn", "pnpm", "bun"):
            manager = declared.split("@")[0]
        elif m.exists(tree, "pnpm-lock.yaml"):
            manager = "pnpm"
        elif m.exists(tree, "yarn.lock"):
            manager = "yarn"
        elif m.exists(tree, "bun.lockb") or m.exists(tree, "bun.lock"):
            manager = "bun"
        scripts = m.as_dict(pkg.get("scripts"))
        if "build" in scripts:
            steps = [[manager, "install"], [manager, "run", "build"]]
            artifacts = "bundle"
        elif manager in ("npm", "pnpm", "yarn"):
            # no build script: the package is its sources, packed as they are. A "prepare" hook
            # is npm's build-on-install convention and runs; other pack hooks (prepack: file
            # pruning such as npmignore, which needs a .gitignore a published tarball lacks)
            # are skipped.
            steps = [[manager, "pack"]] if "prepare" in scripts else [[manager, "pack", "--ignore-scripts"]]
            artifacts = "tarball"
        else:
            steps = [[manager, "install"]]
            artifacts = "tarball"
        add(manager, "package.json", steps, artifacts)


def go_has_main(tree: Path) -> bool:
    """True when a default `go build ./...` builds a command (build constraints honoured)."""
    return go_files.has_main_package(tree)
