"""Test suites of a tree and the command that runs them (analyzer name ``tests``).

Python: pytest when a pytest configuration (pyproject ``[tool.pytest.ini_options]`` /
``[tool.pytest]``, pytest.ini, setup.cfg ``[tool:pytest]``, tox.ini ``[pytest]``), a
conftest.py, an ``import pytest`` or plain ``def test_`` functions are found; unittest
when every test file only uses ``unittest``. Test files are ``test_*.py`` and
``*_test.py`` outside vendored directories; a unittest suite also gets the pytest
command that runs it as ``alt_command``. A ``src/`` layout is noted as
``"pythonpath": "src"`` (the tests import the package from there unless it is installed).
Rust: ``cargo test``; Go: ``go test ./...``; JavaScript: ``npm test`` when package.json
has a real ``test`` script.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from noa_core.sourcetree import safe_fs
from noa_core.analysis import _manifests as m
from noa_core.analysis.interface import AnalyzerResult

HEAD_BYTES = 64 * 1024
NPM_PLACEHOLDER = "no test specified"

_IMPORTS_PYTEST = re.compile(rb"^\s*(import pytest|from pytest\b|from _pytest\b)", re.M)
_IMPORTS_UNITTEST = re.compile(rb"^\s*(import unittest|from unittest\b)", re.M)
_TEST_FUNCTION = re.compile(rb"^(async\s+)?def test\w*\s*\(", re.M)
_RUST_TEST = re.compile(rb"#\[(tokio::)?test\]|#\[cfg\(test\)\]")


def _is_python_test(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


class TestsAnalyzer:
    name = "tests"
    version = "1"
    __test__ = False  # not a pytest test class, whatever its name

    def analyze(self, tree: Path) -> AnalyzerResult:
        listing = safe_fs.walk(tree)
        files = listing.source_files()
        problems: list[str] = []
        suites: list[dict[str, Any]] = []
        python = self._python(tree, files, problems)
        if python:
            suites.append(python)
        if m.exists(tree, "Cargo.toml"):
            suites.extend(self._rust(tree, files))
        go_tests = [f for f in files if f.name.endswith("_test.go")]
        if go_tests and m.exists(tree, "go.mod"):
            suites.append({"framework": "go", "path": ".", "command": ["go", "test", "./..."],
                           "files": len(go_tests)})
        npm = self._npm(tree, files, problems)
        if npm:
            suites.append(npm)
        primary = max(suites, key=lambda s: s["files"], default=None)
        data: dict[str, Any] = {
            "suites": suites,
            "command": primary["command"] if primary else None,
            "framework": primary["framework"] if primary else None,
        }
        if primary and "pythonpath" in primary:
            data["pythonpath"] = primary["pythonpath"]
        if problems:
            return AnalyzerResult(self.name, "unknown", reason="; ".join(problems), data=data)
        return AnalyzerResult(self.name, "ok", reason="" if suites else "no test suite found",
                              data=data)

    # -- Python -----------------------------------------------------------------------

    def _python(self, tree: Path, files: tuple[safe_fs.FileEntry, ...],
                problems: list[str]) -> dict[str, Any] | None:
        config_source, testpaths = _pytest_config(tree, problems)
        tests = [f for f in files if _is_python_test(f.name)]
        conftests = [f for f in files if f.name == "conftest.py"]
        if not tests and not config_source:
            return None
        uses_pytest = bool(config_source or conftests)
        uses_unittest = False
        plain_functions = False
        for f in tests:
            try:
                head = safe_fs.read_bytes(tree, f.rel, HEAD_BYTES)
            except OSError:
                continue
            uses_pytest = uses_pytest or bool(_IMPORTS_PYTEST.search(head))
            uses_unittest = uses_unittest or bool(_IMPORTS_UNITTEST.search(head))
            plain_functions = plain_functions or bool(_TEST_FUNCTION.search(head))
        if uses_unittest and not uses_pytest and not plain_functions:
            # unittest-style files, but the project's own people run pytest when they declare it
            # (pytest counts subTest() results; unittest does not)
            uses_pytest = _declares_pytest(tree)
        framework = "unittest" if uses_unittest and not uses_pytest and not plain_functions \
            else "pytest"
        roots = [p.rstrip("/") for p in testpaths if any(
            f.rel == p.rstrip("/") or f.rel.startswith(p.rstrip("/") + "/") for f in files)]
        if not roots:
            roots = _test_roots(tests) or ["."]
        suite: dict[str, Any] = {"framework": framework, "path": roots[0], "paths": roots,
                                 "files": len(tests)}
        if framework == "pytest":
            # A project that configures pytest (testpaths, doctest options, ...) is run the way its
            # own people run it: plain `pytest` from its root, the configuration deciding what to
            # collect (inflect's --doctest-modules finds doctests outside tests/, for example).
            suite["command"] = ["python", "-m", "pytest"] if config_source else ["python", "-m", "pytest", *roots]
        else:
            suite["command"] = ["python", "-m", "unittest", "discover", "-s", roots[0], "-t", "."]
            # pytest runs unittest suites too, with richer reports.
            suite["alt_command"] = ["python", "-m", "pytest", *roots]
        if config_source:
            suite["config"] = config_source
        pythonpath = _src_layout(tree, files)
        if pythonpath:
            suite["pythonpath"] = pythonpath
        return suite

    # -- Rust / JavaScript ---------------------------------------------------------------

    @staticmethod
    def _rust(tree: Path, files: tuple[safe_fs.FileEntry, ...]) -> list[dict[str, Any]]:
        count = 0
        for f in files:
            if f.suffix != ".rs":
                continue
            if f.parts[0] == "tests":
                count += 1
                continue
            try:
                if _RUST_TEST.search(safe_fs.read_bytes(tree, f.rel, 1 << 20)):
                    count += 1
            except OSError:
                continue
        if not count:
            return []
        return [{"framework": "cargo", "path": ".", "command": ["cargo", "test"], "files": count}]

    @staticmethod
    def _npm(tree: Path, files: tuple[safe_fs.FileEntry, ...],
             problems: list[str]) -> dict[str, Any] | None:
        if not m.exists(tree, "package.json"):
            return None
        try:
            pkg = m.load_json(tree, "package.json")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return None
        scripts = pkg.get("scripts") if isinstance(pkg, dict) else None
        test = scripts.get("test") if isinstance(scripts, dict) else None
        if not isinstance(test, str) or NPM_PLACEHOLDER in test:
            return None
        count = sum(1 for f in files if re.search(r"\.(test|spec)\.[cm]?[jt]sx?$", f.name)
                    or "__tests__" in f.parts)
        return {"framework": "npm", "path": ".", "command": ["npm", "test"], "files": count,
                "script": test[:200]}


def _pytest_config(tree: Path, problems: list[str]) -> tuple[str | None, list[str]]:
    """Where pytest is configured, and its ``testpaths``."""
    if m.exists(tree, "pytest.ini"):
        cfg = _ini(tree, "pytest.ini", problems)
        if cfg is not None:
            return "pytest.ini", _ini_testpaths(cfg, "pytest")
    if m.exists(tree, "pyproject.toml"):
        try:
            doc = m.load_toml(tree, "pyproject.toml")
        except m.ManifestError as exc:
            problems.append(str(exc))
            doc = {}
        for keys in (("tool", "pytest", "ini_options"), ("tool", "pytest")):
            section = m.table(doc, *keys)
            if section:
                paths = section.get("testpaths")
                if isinstance(paths, str):
                    paths = paths.split()
                return "pyproject.toml", [p for p in paths or [] if isinstance(p, str)]
    for rel, name in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if m.exists(tree, rel):
            cfg = _ini(tree, rel, problems)
            if cfg is not None and cfg.has_section(name):
                return rel, _ini_testpaths(cfg, name)
    return None, []


def _ini(tree: Path, rel: str, problems: list[str]) -> Any:
    try:
        return m.load_ini(tree, rel)
    except m.ManifestError as exc:
        problems.append(str(exc))
        return None


def _ini_testpaths(cfg: Any, section: str) -> list[str]:
    if cfg.has_option(section, "testpaths"):
        return [p for p in cfg.get(section, "testpaths").split() if p]
    return []


def _test_roots(tests: list[safe_fs.FileEntry]) -> list[str]:
    """Shallowest ``tests``/``test`` directory holding each test file, else its directory."""
    roots: list[str] = []
    for f in tests:
        parts = f.parts[:-1]
        root = "."
        for i, part in enumerate(parts):
            if part in safe_fs.TEST_DIR_NAMES:
                root = "/".join(parts[: i + 1])
                break
        else:
            root = "/".join(parts) or "."
        if root not in roots:
            roots.append(root)
    # Drop roots nested in another root.
    roots.sort(key=lambda r: (r.count("/"), r))
    kept: list[str] = []
    for r in roots:
        if not any(k == "." or r.startswith(k + "/") for k in kept):
            kept.append(r)
    return kept


def _src_layout(tree: Path, files: tuple[safe_fs.FileEntry, ...]) -> str | None:
    """``"src"`` when the importable code lives under src/ and not at the top level."""
    under_src = {f.parts[1] for f in files if len(f.parts) >= 3 and f.parts[0] == "src"
                 and f.parts[-1] == "__init__.py" and len(f.parts) == 3}
    under_src |= {PurePosixPath(f.parts[1]).stem for f in files
                  if len(f.parts) == 2 and f.parts[0] == "src" and f.suffix == ".py"}
    if not under_src:
        return None
    top = {f.parts[0] for f in files if len(f.parts) == 2 and f.parts[1] == "__init__.py"}
    return None if under_src & top else "src"


def _declares_pytest(tree: Path) -> bool:
    """Whether the project lists pytest among what it needs for testing (read, never run)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from noa_core.pyenv.declared import read_declared

    try:
        declared = read_declared(tree)
    except (OSError, ValueError):
        return False
    for text in declared.requirements:
        try:
            if canonicalize_name(Requirement(text).name) == "pytest":
                return True
        except InvalidRequirement:
            continue
    return False
