"""Parsing of build / package manifests without executing anything.

TOML through :mod:`tomllib`, JSON through :mod:`json`, INI through :mod:`configparser`
(no interpolation), and ``setup.py`` through :mod:`ast`: only literal keyword
arguments of a ``setup(...)`` call are read (a module-level name bound to a literal is
followed one step); anything computed is reported as not literal, never evaluated.
"""

from __future__ import annotations

import ast
import configparser
import json
import tomllib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from email.message import Message
from pathlib import Path
from typing import Any

from noa_core.sourcetree import safe_fs

MANIFEST_LIMIT = 2 * 1024 * 1024


class ManifestError(Exception):
    """A manifest exists but could not be parsed."""


def exists(tree: Path, rel: str) -> bool:
    return safe_fs.is_regular(tree, rel)


def read(tree: Path, rel: str) -> str:
    data = safe_fs.read_bytes(tree, rel, MANIFEST_LIMIT + 1)
    if len(data) > MANIFEST_LIMIT:
        raise ManifestError(f"{rel}: larger than {MANIFEST_LIMIT} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{rel}: not UTF-8 ({exc.reason})") from None


def load_toml(tree: Path, rel: str) -> dict[str, Any]:
    try:
        return tomllib.loads(read(tree, rel))
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{rel}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ManifestError(f"{rel}: TOML nested too deeply") from None
    except OSError as exc:
        raise ManifestError(f"{rel}: {exc.strerror or exc}") from None


def load_json(tree: Path, rel: str) -> Any:
    try:
        return json.loads(read(tree, rel))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"{rel}: invalid JSON: {exc}") from None
    except OSError as exc:
        raise ManifestError(f"{rel}: {exc.strerror or exc}") from None


def load_ini(tree: Path, rel: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(read(tree, rel), source=rel)
    except configparser.Error as exc:
        raise ManifestError(f"{rel}: invalid INI: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise ManifestError(f"{rel}: {exc.strerror or exc}") from None
    return parser


def load_pkg_info(tree: Path, rel: str = "PKG-INFO") -> Message:
    """Core metadata (``PKG-INFO`` / ``METADATA``): RFC 822 headers."""
    try:
        return HeaderParser().parsestr(read(tree, rel))
    except OSError as exc:
        raise ManifestError(f"{rel}: {exc.strerror or exc}") from None


def table(doc: Any, *keys: str) -> dict[str, Any]:
    """``doc[k1][k2]...`` if every step is a table, else ``{}``."""
    cur = doc
    for key in keys:
        if not isinstance(cur, dict):
            return {}
        cur = cur.get(key, {})
    return cur if isinstance(cur, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def ini_list(value: str) -> list[str]:
    """A setup.cfg list value: one item per line (or ``;``-free comma list on one line)."""
    lines = [ln.strip() for ln in value.splitlines()]
    items = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(items) == 1 and "," in items[0] and ";" not in items[0]:
        items = [p.strip() for p in items[0].split(",") if p.strip()]
    return items


# -- setup.py -----------------------------------------------------------------------

NOT_LITERAL = object()


@dataclass(frozen=True)
class SetupCall:
    """The literal keyword arguments of the ``setup(...)`` call in a setup.py."""

    found: bool
    kwargs: dict[str, Any] = field(default_factory=dict)
    non_literal: frozenset[str] = frozenset()
    has_star_kwargs: bool = False

    def get(self, key: str) -> Any:
        """Literal value, :data:`NOT_LITERAL` if computed, None if absent."""
        if key in self.non_literal:
            return NOT_LITERAL
        if key not in self.kwargs and self.has_star_kwargs:
            return NOT_LITERAL
        return self.kwargs.get(key)


def parse_setup_py(tree: Path, rel: str = "setup.py") -> SetupCall:
    """Read ``setup(...)`` keyword arguments from setup.py with :mod:`ast` only."""
    try:
        module = ast.parse(read(tree, rel), filename=rel)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ManifestError(f"{rel}: cannot parse: {exc.__class__.__name__}") from None
    except OSError as exc:
        raise ManifestError(f"{rel}: {exc.strerror or exc}") from None
    assignments: dict[str, ast.expr] = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            assignments[node.targets[0].id] = node.value
    call = _find_setup_call(module)
    if call is None:
        return SetupCall(found=False)
    kwargs: dict[str, Any] = {}
    non_literal: set[str] = set()
    star = False
    for kw in call.keywords:
        if kw.arg is None:
            star = True
            continue
        value = _literal(kw.value, assignments)
        if value is NOT_LITERAL:
            non_literal.add(kw.arg)
        else:
            kwargs[kw.arg] = value
    return SetupCall(found=True, kwargs=kwargs, non_literal=frozenset(non_literal),
                     has_star_kwargs=star)


def _find_setup_call(module: ast.Module) -> ast.Call | None:
    for node in ast.walk(module):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else None
            if name == "setup":
                return node
    return None


def _literal(node: ast.expr, assignments: dict[str, ast.expr]) -> Any:
    if isinstance(node, ast.Name) and node.id in assignments:
        node = assignments[node.id]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return NOT_LITERAL
