"""Small projects written on the fly for the validation tests."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


# A src-layout project: 3 tests pass, 1 fails, 1 errors (its fixture raises).
TINY_SRC_PROJECT = {
    "pyproject.toml": """
        [project]
        name = "tinycalc"
        version = "0.1"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
    """,
    "src/tinycalc/__init__.py": """
        def add(a, b):
            return a + b

        def mul(a, b):
            return a * b
    """,
    "tests/test_calc.py": """
        import pytest
        from tinycalc import add, mul

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture blew up")

        def test_add():
            assert add(2, 3) == 5

        def test_mul():
            assert mul(2, 3) == 6

        def test_add_neg():
            assert add(-1, 1) == 0

        def test_wrong():
            assert mul(2, 2) == 5

        def test_uses_broken(broken):
            assert True
    """,
}


def with_pyproject_addopts(files: dict[str, str], addopts: str) -> dict[str, str]:
    out = dict(files)
    out["pyproject.toml"] = files["pyproject.toml"].rstrip() + f'\n        addopts = "{addopts}"\n'
    return out
