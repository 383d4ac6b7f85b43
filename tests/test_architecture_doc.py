"""docs/architecture.md stays true: every path it names exists, every flow it names is defined
in the module it names, and every noa_core package and module is named."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "architecture.md"
ROOTS = ("noa_core", "noa", "flows", "tasks", "blocks", "deployments")
PATH = re.compile(r"`((?:%s)(?:/[\w.]+)*/?)(?::(\w+))?`" % "|".join(ROOTS))


def named() -> list[tuple[str, str | None]]:
    return PATH.findall(DOC.read_text())


def test_every_named_path_exists() -> None:
    missing = sorted({path for path, _ in named() if not (REPO_ROOT / path).exists()})
    assert missing == []


def test_every_named_flow_is_defined_in_its_module() -> None:
    flows = {(path, func) for path, func in named() if func}
    assert len(flows) >= 12
    for path, func in sorted(flows):
        tree = ast.parse((REPO_ROOT / path).read_text())
        defined = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert func in defined, f"{path} defines no {func}"
        decorators = [ast.unparse(d) for d in defined[func].decorator_list]
        assert any(d.startswith("flow") for d in decorators), f"{path}:{func} is not a Prefect flow"


def test_every_noa_core_package_is_named() -> None:
    paths = {path.rstrip("/") for path, _ in named()}
    children = {f"noa_core/{p.name}" for p in (REPO_ROOT / "noa_core").iterdir()
                if (p.is_dir() and p.name != "__pycache__") or (p.suffix == ".py" and p.name != "__init__.py")}
    assert sorted(children - paths) == [], "add a line for these to docs/architecture.md"
