"""The layers hold: `lint-imports` (import-linter) passes on this tree, and the same contracts
fail on a tree that breaks them.

The contracts live in pyproject.toml (``[tool.importlinter]``); docs/architecture.md explains
them. The failing cases run the real contracts on a stand-in tree: one empty module for every
module the contracts name, plus one bad import each, so a contract that could not fail (a
typo in a module name, a layer in the wrong order) shows up here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = REPO_ROOT / "pyproject.toml"


def lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports --config CONFIG`` run from ``root`` (the folder holding the root packages)."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400"}  # one line per contract
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--config", str(config), "--no-cache", "--no-logo"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def contract(contract_id: str) -> dict:
    return next(c for c in contracts() if c["id"] == contract_id)


def layer_modules(layer: str) -> list[str]:
    return [m.strip() for m in re.split(r"[|:]", layer) if m.strip()]


def test_lint_imports_passes_on_this_tree() -> None:
    res = lint_imports(REPO_ROOT, PYPROJECT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in res.stdout


def test_every_noa_core_package_has_a_layer() -> None:
    """A new noa_core package or module must be placed in a layer (and so in the framework-free
    contract, unless it is an entry point), or the contracts would silently ignore it."""
    layered = {m for layer in contract("layers")["layers"] for m in layer_modules(layer)}
    children = {f"noa_core.{p.stem}" for p in (REPO_ROOT / "noa_core").iterdir()
                if (p.is_dir() and (p / "__init__.py").is_file())
                or (p.suffix == ".py" and p.name != "__init__.py")}
    assert sorted(children - layered) == [], "add these to the layers contract in pyproject.toml"
    assert sorted(m for m in layered if m.startswith("noa_core.") and m not in children) == []
    entry_points = {"noa_core.cli", "noa_core.server"}
    framework_free = set(contract("domain-framework-free")["source_modules"])
    assert framework_free == children - entry_points


# --- the contracts can fail --------------------------------------------------------------------

def write_module(root: Path, module: str, body: str = "") -> None:
    """Create ``module`` (as a package) under ``root``, its parents too; append ``body``."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        pkg = root.joinpath(*parts[:i])
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").touch()
    init = root.joinpath(*parts) / "__init__.py"
    if body:
        init.write_text(init.read_text() + body + "\n")


def stand_in_tree(root: Path) -> Path:
    """Every module the contracts name, empty, plus the imports their ignore lists expect;
    returns the config to run (a copy of this pyproject.toml)."""
    internal = ("noa", "noa_core", "flows", "tasks", "blocks", "deployments")
    for c in contracts():
        for layer in c.get("layers", []):
            for module in layer_modules(layer):
                write_module(root, module)
        for module in c.get("source_modules", []) + c.get("ancestors", []):
            write_module(root, module)
        for ignored in c.get("ignore_imports", []):
            importer, imported = (s.strip() for s in ignored.split("->"))
            if imported.split(".")[0] in internal:
                write_module(root, imported)
            write_module(root, importer, f"import {imported}")
    config = root / "pyproject.toml"
    config.write_text(PYPROJECT.read_text())
    return config


def test_the_stand_in_tree_keeps_the_contracts(tmp_path: Path) -> None:
    res = lint_imports(tmp_path, stand_in_tree(tmp_path))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


@pytest.mark.parametrize(("importer", "body", "broken"), [
    # storage sits below the domain
    ("noa_core.storage", "import noa_core.analysis", "Layers"),
    # the domain never reaches up into flows, tasks or the faces
    ("noa_core.deploy", "import noa_core.server", "Layers"),
    ("noa_core.sandbox", "import flows", "Layers"),
    # a flow never imports the public surface built on it
    ("flows", "import noa", "Layers"),
    # a task never starts a flow
    ("tasks", "import flows", "Layers"),
    # the domain imports no Prefect, Typer or FastAPI
    ("noa_core.swarm", "import prefect", "imports no Prefect"),
    ("noa_core.workspace", "import typer", "imports no Prefect"),
    ("noa_core.storage", "import fastapi", "imports no Prefect"),
    # the cycle issue 18 removed: cli/main.py <-> the *_cmd.py modules
    ("noa_core.cli.main", "import noa_core.cli.apps_cmd", "No import cycles"),
])
def test_a_broken_contract_fails_lint_imports(tmp_path: Path, importer: str, body: str, broken: str) -> None:
    config = stand_in_tree(tmp_path)
    write_module(tmp_path, importer, body)
    if importer == "noa_core.cli.main":
        write_module(tmp_path, "noa_core.cli.apps_cmd", "import noa_core.cli.main")
    res = lint_imports(tmp_path, config)
    assert res.returncode == 1, res.stdout[-4000:]
    broken_lines = [line for line in res.stdout.splitlines() if "BROKEN" in line]
    assert len(broken_lines) == 1 and broken in broken_lines[0], res.stdout[-4000:]
