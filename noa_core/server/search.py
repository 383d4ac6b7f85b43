"""Retrieval over the registry and the dropped code: project and drop records, file names,
Python symbols (``ast``) and text lines; ranked and paged.

Each drop's source tree (``NOA_HOME/drops/<id>/src``) is indexed once per change of its
directory's mtime and kept in memory (drops are not edited after they land).

Ranking (higher first, ties by kind then path): an exact name match beats a prefix, a
prefix beats a substring; symbols and file names outrank text lines; a text line scores
by how many times the query occurs in it (capped).
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 512 * 1024
MAX_FILES_PER_DROP = 20_000
TEXT_SUFFIXES = frozenset({".py", ".pyi", ".rs", ".go", ".js", ".ts", ".md", ".rst", ".txt", ".toml", ".cfg",
                           ".ini", ".yaml", ".yml", ".json", ".c", ".h", ".java", ".sh", ".html", ".css"})
KIND_ORDER = {"project": 0, "drop": 1, "symbol": 2, "file": 3, "text": 4}


@dataclass(frozen=True)
class Hit:
    kind: str  # project | drop | file | symbol | text
    score: float
    name: str
    drop_id: str | None = None
    path: str | None = None
    line: int | None = None
    snippet: str | None = None
    symbol_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Symbol:
    name: str
    type: str
    path: str
    line: int


@dataclass
class _DropIndex:
    mtime: float
    files: list[str]
    symbols: list[_Symbol]
    texts: dict[str, list[str]]


def _name_score(name: str, q: str, exact: float, prefix: float, sub: float) -> float:
    low = name.lower()
    if low == q:
        return exact
    if low.startswith(q):
        return prefix
    if q in low:
        return sub
    return 0.0


def _python_symbols(rel: str, text: str) -> Iterator[_Symbol]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield _Symbol(node.name, "class", rel, node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield _Symbol(node.name, "function", rel, node.lineno)


class CodeSearch:
    def __init__(self, drops_dir: Path) -> None:
        self.drops_dir = Path(drops_dir)
        self._index: dict[str, _DropIndex] = {}
        self._lock = threading.Lock()

    def _build(self, drop_id: str, src: Path, mtime: float) -> _DropIndex:
        files: list[str] = []
        symbols: list[_Symbol] = []
        texts: dict[str, list[str]] = {}
        for root, dirs, names in os.walk(src, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__", "node_modules", ".venv"))
            for n in sorted(names):
                if len(files) >= MAX_FILES_PER_DROP:
                    break
                full = Path(root) / n
                rel = full.relative_to(src).as_posix()
                files.append(rel)
                if full.suffix.lower() not in TEXT_SUFFIXES or full.is_symlink():
                    continue
                try:
                    if full.stat().st_size > MAX_FILE_BYTES:
                        continue
                    text = full.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                texts[rel] = text.splitlines()
                if full.suffix == ".py":
                    symbols.extend(_python_symbols(rel, text))
        return _DropIndex(mtime, files, symbols, texts)

    def _drop_indexes(self) -> Iterator[tuple[str, _DropIndex]]:
        if not self.drops_dir.is_dir():
            return
        for entry in sorted(self.drops_dir.iterdir()):
            src = entry / "src"
            if not src.is_dir():
                continue
            mtime = src.stat().st_mtime
            with self._lock:
                idx = self._index.get(entry.name)
            if idx is None or idx.mtime != mtime:
                idx = self._build(entry.name, src, mtime)
                with self._lock:
                    self._index[entry.name] = idx
            yield entry.name, idx

    def search(self, query: str, *, kinds: Iterable[str] | None = None,
               records: Iterable[tuple[str, str, str | None, str]] = ()) -> list[Hit]:
        """All hits for ``query``, ranked. ``records`` are registry rows: (kind, name, drop_id, text)."""
        q = query.lower().strip()
        wanted = set(kinds) if kinds else set(KIND_ORDER)
        hits: list[Hit] = []
        for kind, name, drop_id, text in records:
            if kind not in wanted:
                continue
            score = max(_name_score(name, q, 100, 60, 30), 10.0 if q in text.lower() else 0.0)
            if score:
                hits.append(Hit(kind, score, name, drop_id=drop_id, snippet=text[:200]))
        if wanted & {"file", "symbol", "text"}:
            for drop_id, idx in self._drop_indexes():
                if "file" in wanted:
                    for rel in idx.files:
                        base = rel.rsplit("/", 1)[-1]
                        score = max(_name_score(base, q, 50, 35, 20), 8.0 if q in rel.lower() else 0.0)
                        if score:
                            hits.append(Hit("file", score, base, drop_id=drop_id, path=rel))
                if "symbol" in wanted:
                    for sym in idx.symbols:
                        score = _name_score(sym.name, q, 80, 45, 25)
                        if score:
                            hits.append(Hit("symbol", score, sym.name, drop_id=drop_id, path=sym.path,
                                            line=sym.line, symbol_type=sym.type))
                if "text" in wanted:
                    for rel, lines in idx.texts.items():
                        for i, line in enumerate(lines, 1):
                            n = line.lower().count(q)
                            if n:
                                hits.append(Hit("text", min(5.0, 1.0 + n), rel.rsplit("/", 1)[-1], drop_id=drop_id,
                                                path=rel, line=i, snippet=line.strip()[:200]))
        hits.sort(key=lambda h: (-h.score, KIND_ORDER.get(h.kind, 9), h.drop_id or "", h.path or "", h.line or 0,
                                 h.name))
        return hits
