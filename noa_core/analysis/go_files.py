"""Which Go files a default `go build ./...` compiles, and the package each declares.

Read from the files, without running `go`: the header's `//go:build` expression (or the
older `// +build` lines), the `_GOOS` / `_GOARCH` file-name suffixes, and the directories
`./...` never enters (`testdata`, `vendor`, names starting with `_` or `.`). A generator
such as `gen_tables.go` with `//go:build generate` and `package main` is therefore not a
main package: the default build leaves it out.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from noa_core.sourcetree import safe_fs

KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
})
KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv",
    "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
})
UNIX_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "linux",
    "netbsd", "openbsd", "solaris",
})
_MACHINE_TO_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                      "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                      "riscv64": "riscv64"}
_SKIPPED_DIRS = ("testdata", "vendor")
_PACKAGE = re.compile(rb"^package\s+([A-Za-z_][A-Za-z0-9_]*)")
_TOKEN = re.compile(r"\s*(\(|\)|!|&&|\|\||[A-Za-z0-9_.]+)")
_Parser = Callable[[list[str], "GoTarget"], tuple[bool, list[str]]]


@dataclass(frozen=True)
class GoTarget:
    """The platform a default build compiles for: GOOS, GOARCH and the extra tags it sets."""

    goos: str = "linux"
    goarch: str = "amd64"
    cgo: bool = True

    @classmethod
    def host(cls) -> GoTarget:
        return cls("linux", _MACHINE_TO_GOARCH.get(platform.machine().lower(), "amd64"))

    def satisfies(self, tag: str) -> bool:
        if tag in (self.goos, self.goarch, "gc"):
            return True
        if tag == "unix":
            return self.goos in UNIX_OS
        if tag == "cgo":
            return self.cgo
        # go1.N release tags: any toolchain new enough to build the module sets them
        return re.fullmatch(r"go1(\.\d+)?", tag) is not None


class BuildExprError(ValueError):
    """A `//go:build` line that is not a valid expression."""


def eval_build_expr(expr: str, target: GoTarget) -> bool:
    """Evaluate a `//go:build` expression (`!`, `&&`, `||`, parentheses) for *target*."""
    tokens: list[str] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise BuildExprError(f"bad token in {expr!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    value, rest = _or(tokens, target)
    if rest:
        raise BuildExprError(f"unexpected {rest[0]!r} in {expr!r}")
    return value


def _chain(tokens: list[str], target: GoTarget, op: str, operand: _Parser,
           combine: Callable[[bool, bool], bool]) -> tuple[bool, list[str]]:
    """``operand (op operand)*``, left to right (every operand is parsed: syntax errors surface)."""
    value, tokens = operand(tokens, target)
    while tokens and tokens[0] == op:
        right, tokens = operand(tokens[1:], target)
        value = combine(value, right)
    return value, tokens


def _or(tokens: list[str], target: GoTarget) -> tuple[bool, list[str]]:
    return _chain(tokens, target, "||", _and, lambda a, b: a or b)


def _and(tokens: list[str], target: GoTarget) -> tuple[bool, list[str]]:
    return _chain(tokens, target, "&&", _not, lambda a, b: a and b)


def _not(tokens: list[str], target: GoTarget) -> tuple[bool, list[str]]:
    if not tokens:
        raise BuildExprError("expression ends early")
    head = tokens[0]
    if head == "!":
        value, rest = _not(tokens[1:], target)
        return not value, rest
    if head == "(":
        value, rest = _or(tokens[1:], target)
        if not rest or rest[0] != ")":
            raise BuildExprError("missing ')'")
        return value, rest[1:]
    if head in (")", "&&", "||"):
        raise BuildExprError(f"unexpected {head!r}")
    return target.satisfies(head), tokens[1:]


def _plus_build(lines: tuple[str, ...], target: GoTarget) -> bool:
    """Old-style `// +build` lines: spaces are OR, commas AND, `!` negates; lines are ANDed."""
    for line in lines:
        options = line.split()
        if not any(all((not target.satisfies(t[1:])) if t.startswith("!") else target.satisfies(t)
                       for t in option.split(",")) for option in options):
            return False
    return True


@dataclass(frozen=True)
class GoFileHeader:
    package: str | None
    build_expr: str | None
    plus_build: tuple[str, ...]


def read_header(data: bytes) -> GoFileHeader:
    """The package clause and build constraints of a Go file's leading comment block."""
    build_expr: str | None = None
    plus: list[str] = []
    in_block = False
    for raw in data.splitlines():
        line = raw.strip()
        if in_block:
            if b"*/" in line:
                in_block = False
                line = line.split(b"*/", 1)[1].strip()
                if not line:
                    continue
            else:
                continue
        if not line:
            continue
        if line.startswith(b"//"):
            text = line.decode("utf-8", "replace")
            if text.startswith("//go:build ") and build_expr is None:
                build_expr = text[len("//go:build "):]
            elif re.match(r"//\s*\+build\s", text):
                plus.append(text.split("+build", 1)[1])
            continue
        if line.startswith(b"/*"):
            if b"*/" not in line[2:]:
                in_block = True
            continue
        m = _PACKAGE.match(line)
        return GoFileHeader(m.group(1).decode() if m else None, build_expr, tuple(plus))
    return GoFileHeader(None, build_expr, tuple(plus))


def name_matches(name: str, target: GoTarget) -> bool:
    """The `_GOOS`, `_GOARCH` and `_GOOS_GOARCH` file-name suffixes Go applies implicitly."""
    stem = name.removesuffix(".go")
    stem = stem.removesuffix("_test")
    parts = stem.split("_")[1:]
    if len(parts) >= 2 and parts[-2] in KNOWN_OS and parts[-1] in KNOWN_ARCH:
        return parts[-2] == target.goos and parts[-1] == target.goarch
    if parts and parts[-1] in KNOWN_OS:
        return parts[-1] == target.goos
    if parts and parts[-1] in KNOWN_ARCH:
        return parts[-1] == target.goarch
    return True


def header_matches(header: GoFileHeader, target: GoTarget) -> bool:
    if header.build_expr is not None:
        try:
            return eval_build_expr(header.build_expr, target)
        except BuildExprError:
            return True  # go itself would refuse the file; let the build say so
    return _plus_build(header.plus_build, target)


def _walked_by_go(rel: Path) -> bool:
    return not any(part in _SKIPPED_DIRS or part.startswith(("_", ".")) for part in rel.parts[:-1])


def built_packages(tree: Path, target: GoTarget | None = None) -> dict[str, set[str]]:
    """Directory (relative, '.' for the root) -> package names its built non-test files declare."""
    target = target or GoTarget.host()
    entries = list(safe_fs.walk(tree).source_files())
    # a folder with its own go.mod is another module: `./...` stops at it
    nested = {Path(e.rel).parent for e in entries if e.name == "go.mod" and Path(e.rel).parent != Path(".")}
    found: dict[str, set[str]] = {}
    for entry in entries:
        name = entry.name
        if entry.suffix != ".go" or name.endswith("_test.go") or name.startswith(("_", ".")):
            continue
        rel = Path(entry.rel)
        if not _walked_by_go(rel) or not name_matches(name, target) \
                or any(m == rel.parent or m in rel.parents for m in nested):
            continue
        try:
            header = read_header(safe_fs.read_bytes(tree, entry.rel, 16384))
        except OSError:
            continue
        if header.package is None or not header_matches(header, target):
            continue
        found.setdefault(str(rel.parent), set()).add(header.package)
    return found


def has_main_package(tree: Path, target: GoTarget | None = None) -> bool:
    """True when `go build ./...` would build at least one command (a `package main`)."""
    return any("main" in names for names in built_packages(tree, target).values())
