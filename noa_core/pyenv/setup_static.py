"""``setup.cfg`` and ``setup.py`` metadata, read without executing anything.

``setup.cfg`` is an INI file (no interpolation). ``setup.py`` is parsed with :mod:`ast`:
the keywords of its ``setup(...)`` call are used when they are literals, or names
assigned once from literals in the same module (lists, tuples, dicts, ``+`` of lists).
Anything computed (a function call, a file read, a loop) is a note: the file is never run.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from noa_core.pyenv._files import (
    DeclarationError,
    Part,
    Reading,
    exists,
    read_declaration,
    short,
)
from noa_core.pyenv.requirements_txt import logical_lines, read_requirement_file

SETUP_CFG = "setup.cfg"
SETUP_PY = "setup.py"
MAX_EVAL_DEPTH = 16

Select = Callable[[str], bool]


# ---------------------------------------------------------------- setup.cfg

def _cfg_list(value: str) -> list[str]:
    lines = logical_lines(value)
    out: list[str] = []
    for line in lines:
        # an old one-line "a; b" list, told apart from a marker by what follows the ';'
        if ";" in line and "\n" not in value.strip() and all(_bare_name(p) for p in line.split(";")):
            out.extend(p.strip() for p in line.split(";") if p.strip())
        else:
            out.append(line)
    return out


def _bare_name(text: str) -> bool:
    return bool(re.match(r"^\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*([<>=!~]=?[^;]*)?$", text))


def _cfg_requirements(tree: Path, value: str, where: str, notes: list[str]) -> list[str]:
    value = value.strip()
    if value.startswith("file:"):
        out: list[str] = []
        for rel in value[len("file:"):].split(","):
            rel = rel.strip()
            try:
                rf = read_requirement_file(tree, rel)
            except DeclarationError as exc:
                notes.append(f"{where}: {exc}")
                continue
            notes.extend(rf.notes)
            out.extend(rf.requirements)
        return out
    return _cfg_list(value)


def read_setup_cfg(tree: Path, select: Select) -> Reading:
    out = Reading()
    if not exists(tree, SETUP_CFG):
        return out
    out.present = True
    try:
        text = read_declaration(tree, SETUP_CFG)
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(text, source=SETUP_CFG)
    except DeclarationError as exc:
        out.notes.append(str(exc))
        return out
    except configparser.Error as exc:
        out.notes.append(f"{SETUP_CFG}: not a valid INI file ({short(str(exc), 100)}); ignored")
        return out
    out.defines_package = parser.has_section("metadata") or parser.has_section("options")
    name = parser.get("metadata", "name", fallback="").strip()
    out.name = canonicalize_name(name) if name else None
    pyreq = parser.get("options", "python_requires", fallback="").strip()
    out.python_requires = pyreq or None
    if parser.has_option("options", "install_requires"):
        out.runtime_declared = True
        where = f"{SETUP_CFG} [options] install_requires"
        out.parts.append(Part(where, tuple(_cfg_requirements(tree, parser.get("options", "install_requires"),
                                                              where, out.notes)), runtime=True))
    if parser.has_section("options.extras_require"):
        for extra, value in parser.items("options.extras_require"):
            where = f"{SETUP_CFG} [options.extras_require] {extra}"
            reqs = _cfg_requirements(tree, value, where, out.notes)
            out.extras[extra] = reqs
            if select(extra) and reqs:
                out.parts.append(Part(where, tuple(reqs)))
    if parser.has_option("options", "tests_require"):
        where = f"{SETUP_CFG} [options] tests_require"
        out.parts.append(Part(where, tuple(_cfg_requirements(tree, parser.get("options", "tests_require"),
                                                              where, out.notes))))
    return out


# ---------------------------------------------------------------- setup.py

class _Computed(Exception):
    """The value is not a literal NOA can read without running the file."""


def _module_literals(module: ast.Module) -> dict[str, ast.expr]:
    """Names bound exactly once, at module level (not inside functions or classes), by ``=``."""
    bound: dict[str, list[ast.expr | None]] = {}

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        bound.setdefault(target.id, []).append(stmt.value if len(stmt.targets) == 1 else None)
                    else:
                        for n in ast.walk(target):
                            if isinstance(n, ast.Name):
                                bound.setdefault(n.id, []).append(None)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                bound.setdefault(stmt.target.id, []).append(stmt.value)
            elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
                bound.setdefault(stmt.target.id, []).append(None)
            elif isinstance(stmt, (ast.For, ast.While, ast.With)):
                for n in ast.walk(stmt):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        bound.setdefault(n.id, []).append(None)
            elif isinstance(stmt, ast.If):
                visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)
                for handler in stmt.handlers:
                    visit(handler.body)
                visit(stmt.orelse)
                visit(stmt.finalbody)
    visit(module.body)
    return {name: values[0] for name, values in bound.items() if len(values) == 1 and values[0] is not None}


def _static(node: ast.expr, names: dict[str, ast.expr], depth: int = 0) -> Any:
    if depth > MAX_EVAL_DEPTH:
        raise _Computed
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool, int, type(None))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_static(e, names, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Computed
        return {_static(k, names, depth + 1): _static(v, names, depth + 1)   # type: ignore[arg-type]
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static(node.left, names, depth + 1), _static(node.right, names, depth + 1)
        if type(left) is type(right) and isinstance(left, (list, str)):
            return left + right
        raise _Computed
    if isinstance(node, ast.Name) and node.id in names:
        return _static(names[node.id], names, depth + 1)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _static(kw.value, names, depth + 1) for kw in node.keywords if kw.arg is not None} \
            if all(kw.arg is not None for kw in node.keywords) else _raise()
    raise _Computed


def _raise() -> Any:
    raise _Computed


def _as_requirements(value: Any) -> list[str]:
    if isinstance(value, str):
        return logical_lines(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Computed


def _setup_call(module: ast.Module) -> ast.Call | None:
    for node in ast.walk(module):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "setup") or \
                    (isinstance(func, ast.Attribute) and func.attr == "setup"):
                return node
    return None


def read_setup_py(tree: Path, select: Select) -> Reading:
    out = Reading()
    if not exists(tree, SETUP_PY):
        return out
    out.present = out.defines_package = True
    try:
        module = ast.parse(read_declaration(tree, SETUP_PY), filename=SETUP_PY)
    except DeclarationError as exc:
        out.notes.append(str(exc))
        return out
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        out.notes.append(f"{SETUP_PY}: cannot be parsed ({short(type(exc).__name__ + ': ' + str(exc), 100)}); "
                         "not executed")
        return out
    call = _setup_call(module)
    if call is None:
        out.notes.append(f"{SETUP_PY}: no setup(...) call found; not executed")
        return out
    names = _module_literals(module)
    keywords: dict[str, ast.expr] = {}
    for kw in call.keywords:
        if kw.arg is not None:
            keywords[kw.arg] = kw.value
            continue
        try:
            spread = _static(kw.value, names)
        except _Computed:
            out.notes.append(f"{SETUP_PY}: setup(**...) passes computed keywords; its requirements, if any there, "
                             "are not known (setup.py computes its requirements; not executed)")
            continue
        if isinstance(spread, dict):
            keywords.update({k: ast.Constant(v) if not isinstance(v, (list, dict)) else _literal_node(v)
                             for k, v in spread.items() if isinstance(k, str)})
    computed: list[str] = []

    def value(key: str) -> Any:
        try:
            return _static(keywords[key], names)
        except _Computed:
            computed.append(key)
            return None

    if "name" in keywords:
        try:
            name = _static(keywords["name"], names)
        except _Computed:
            name = None   # a computed name only loses the self-reference check
        if isinstance(name, str) and name.strip():
            out.name = canonicalize_name(name)
    if "python_requires" in keywords:
        try:
            pyreq = _static(keywords["python_requires"], names)
        except _Computed:
            pyreq = None
            out.notes.append(f"{SETUP_PY} computes python_requires; not executed (no Python version check)")
        if isinstance(pyreq, str):
            out.python_requires = pyreq.strip() or None
    if "install_requires" in keywords:
        raw = value("install_requires")
        if raw is not None:
            try:
                out.parts.append(Part(f"{SETUP_PY} install_requires (static)", tuple(_as_requirements(raw)),
                                      runtime=True))
                out.runtime_declared = True
            except _Computed:
                computed.append("install_requires")
    if "extras_require" in keywords:
        raw = value("extras_require")
        if isinstance(raw, dict):
            for extra, reqs in raw.items():
                try:
                    listed = _as_requirements(reqs)
                except _Computed:
                    computed.append(f"extras_require[{extra!r}]")
                    continue
                if isinstance(extra, str):
                    name, _, marker = extra.partition(":")
                    listed = [with_marker(r, marker) for r in listed] if marker.strip() else listed
                    out.extras.setdefault(name, []).extend(listed)
                    if select(name) and listed:
                        out.parts.append(Part(f"{SETUP_PY} extras_require {extra} (static)", tuple(listed)))
        elif raw is not None:
            computed.append("extras_require")
    if "tests_require" in keywords:
        raw = value("tests_require")
        if raw is not None:
            try:
                out.parts.append(Part(f"{SETUP_PY} tests_require (static)", tuple(_as_requirements(raw))))
            except _Computed:
                computed.append("tests_require")
    if "setup_requires" in keywords:
        out.notes.append(f"{SETUP_PY}: setup_requires is a build requirement; not installed into the test environment")
    if computed:
        out.notes.append(f"{SETUP_PY} computes its requirements ({', '.join(dict.fromkeys(computed))}); not executed")
    return out


def with_marker(requirement: str, marker: str) -> str:
    """``requirement`` that applies only where ``marker`` holds (setuptools' ``"extra:marker"`` keys)."""
    base, sep, own = requirement.partition(";")
    return f"{base.strip()}; ({own.strip()}) and ({marker.strip()})" if sep and own.strip() \
        else f"{base.strip()}; {marker.strip()}"


def _literal_node(value: Any) -> ast.expr:
    if isinstance(value, list):
        return ast.List(elts=[_literal_node(v) for v in value], ctx=ast.Load())
    if isinstance(value, dict):
        return ast.Dict(keys=[ast.Constant(k) for k in value], values=[_literal_node(v) for v in value.values()])
    return ast.Constant(value)
