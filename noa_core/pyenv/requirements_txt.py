"""pip requirement files (``requirements*.txt``), read as data: never installed, never executed.

``-r other.txt`` includes are followed when they stay inside the tree (no ``..`` out of it, no
symbolic link); ``-c`` constraints, ``-e`` editables, local paths, URLs and index options are
not requirements NOA installs from an index: each becomes a note. Which files of a tree are
test or runtime requirement files is decided here too (:func:`requirement_files_for_tests`).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from noa_core.pyenv._files import (
    DeclarationError,
    is_exact_pin,
    parse_requirement,
    read_declaration,
    short,
)

MAX_INCLUDE_DEPTH = 8
MAX_FILES = 64
MAX_LINES = 20_000

_COMMENT = re.compile(r"(^|\s+)#.*$")
_LINE_OPTION = re.compile(r"\s+(?=--?[A-Za-z])")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<path>\S+)$")
_CONSTRAINT = re.compile(r"^(?:-c|--constraint)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<path>\S+)$")
_EDITABLE = re.compile(r"^(?:-e|--editable)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<target>\S+)")
_OPTION_NAME = re.compile(r"[\s=]")
_ENV_VAR = re.compile(r"\$\{[^}]*\}")

#: Test / development requirement files, by their place and name (POSIX, relative to the root).
_TEST_FILE = re.compile(
    r"^(?:"
    r"requirements/[^/]*test[^/]*\.txt"
    r"|requirements/dev[^/]*\.txt"
    r"|requirements[-_](?:test|tests|testing|dev|develop|development)[^/]*\.txt"
    r"|(?:test|tests|testing|dev)[-_]requirements[^/]*\.txt"
    r"|(?:tests|test)/requirements[^/]*\.txt"
    r")$",
    re.IGNORECASE,
)
#: a Python version at the end of a file's stem: ...39, ...-py310, ..._3.8 (3.x only)
_PY_SUFFIX = re.compile(r"(?:(?<=[A-Za-z_-])|(?<=py))3\.?(\d{1,2})$", re.IGNORECASE)
_UNWANTED_TOKENS = frozenset({"min", "minimum", "minimal", "oldest", "lowest", "mindeps"})
#: Files that could make up a pinned ``requirements*.txt`` lock (docs files left out).
_LOCK_CANDIDATE = re.compile(r"^(?:requirements[^/]*\.txt|requirements/[^/]+\.txt)$", re.IGNORECASE)


@dataclass
class RequirementFile:
    """What one requirement file (and its includes) asks for."""

    rel: str
    requirements: list[str] = field(default_factory=list)
    included: list[str] = field(default_factory=list)   # files read through -r, in order
    notes: list[str] = field(default_factory=list)
    entries: int = 0          # requirement lines seen (valid or not)
    pinned_entries: int = 0   # of which exact ``==`` pins
    other_entries: int = 0    # editables, paths, URLs: not a pin, not a requirement

    @property
    def all_pinned(self) -> bool:
        """Every requirement line is an exact pin (``-e .``, the project itself, is allowed)."""
        return self.pinned_entries > 0 and self.pinned_entries == self.entries and self.other_entries == 0


def logical_lines(text: str) -> list[str]:
    """Lines with ``\\`` continuations joined and comments removed; blank lines dropped."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines()[:MAX_LINES]:
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = _COMMENT.sub("", pending + line).strip()
        pending = ""
        if line:
            out.append(line)
    if pending.strip():
        out.append(_COMMENT.sub("", pending).strip())
    return [line for line in out if line]


def _looks_local_or_url(entry: str) -> bool:
    if entry.startswith((".", "/", "~", "file:", "git+")) or "://" in entry.split(" @ ")[0]:
        return True
    return bool(re.match(r"^[^\s;@\[]+\.(?:whl|zip|tar\.gz|tgz|tar\.bz2)$", entry)) or entry.endswith("/")


def read_requirement_file(tree: Path, rel: str, *, project_name: str | None = None) -> RequirementFile:
    """Read ``rel`` and its ``-r`` includes; raises :class:`DeclarationError` only for ``rel`` itself."""
    result = RequirementFile(rel=rel)
    text = read_declaration(tree, rel)   # the top file: its absence is the caller's business
    _read_lines(tree, rel, text, result, depth=0, seen={rel}, project_name=project_name)
    return result


def _include_target(current: str, target: str) -> str | None:
    target = target.replace("{toxinidir}/", "").replace("{toxinidir}", ".")
    if target.startswith("/") or "\\" in target or "://" in target:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
    if joined == ".." or joined.startswith(("../", "/")):
        return None
    return joined


def _read_lines(tree: Path, rel: str, text: str, result: RequirementFile, *, depth: int, seen: set[str],
                project_name: str | None) -> None:
    for line in logical_lines(text):
        if line.startswith("-"):
            _option(tree, rel, line, result, depth=depth, seen=seen, project_name=project_name)
            continue
        entry = _LINE_OPTION.split(line, maxsplit=1)[0].strip()   # drop --hash=... and other per-line options
        if _ENV_VAR.search(entry):
            result.notes.append(f"{rel}: {short(entry)!r} uses an environment variable; ignored")
            result.other_entries += 1
            continue
        if _looks_local_or_url(entry):
            result.notes.append(f"{rel}: {short(entry)!r} is a local path or URL, not an index package; ignored")
            result.other_entries += 1
            continue
        result.entries += 1
        req = parse_requirement(entry)
        if isinstance(req, str):
            result.notes.append(f"{rel}: {short(entry)!r} is not a valid requirement ({req}); ignored")
            continue
        if is_exact_pin(req):
            result.pinned_entries += 1
        result.requirements.append(entry)


def _option(tree: Path, rel: str, line: str, result: RequirementFile, *, depth: int, seen: set[str],
            project_name: str | None) -> None:
    if m := _INCLUDE.match(line):
        _follow(tree, rel, m.group("path"), result, depth=depth, seen=seen, project_name=project_name)
    elif m := _CONSTRAINT.match(line):
        result.notes.append(f"{rel}: constraints file {m.group('path')!r} noted, not applied "
                            "(a constraint installs nothing)")
    elif m := _EDITABLE.match(line):
        target = m.group("target")
        if target in (".", "./") or target.startswith((".[", "./[")):
            result.notes.append(f"{rel}: '-e {short(target)}' is the project itself (installed from its own tree)")
            if target.startswith((".[", "./[")):
                extras = target[target.index("[") + 1: target.rfind("]")]
                if project_name:
                    result.requirements.append(f"{project_name}[{extras}]")
        else:
            result.notes.append(f"{rel}: editable {short(target)!r} is not an index package; ignored")
            result.other_entries += 1
    else:
        option = _OPTION_NAME.split(line, maxsplit=1)[0]
        result.notes.append(f"{rel}: option {short(option, 40)!r} ignored")


def _follow(tree: Path, rel: str, target: str, result: RequirementFile, *, depth: int, seen: set[str],
            project_name: str | None) -> None:
    inc = _include_target(rel, target)
    if inc is None:
        result.notes.append(f"{rel}: -r {short(target, 80)!r} leaves the project tree; refused")
        return
    if inc in seen:
        return
    if depth + 1 > MAX_INCLUDE_DEPTH or len(seen) >= MAX_FILES:
        result.notes.append(f"{rel}: -r {inc!r} nested too deeply; ignored")
        return
    seen.add(inc)
    try:
        text = read_declaration(tree, inc)
    except DeclarationError as exc:
        result.notes.append(f"{rel}: -r {short(target, 80)!r}: {exc}")
        return
    result.included.append(inc)
    _read_lines(tree, inc, text, result, depth=depth + 1, seen=seen, project_name=project_name)


def _listing(tree: Path) -> list[str]:
    """Files at the root, in ``requirements/`` and in ``tests/`` / ``test/`` (not through links)."""
    out: list[str] = []
    for prefix in ("", "requirements/", "tests/", "test/"):
        directory = Path(tree) / prefix if prefix else Path(tree)
        try:
            if prefix and not stat.S_ISDIR(os.lstat(directory).st_mode):
                continue
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False) and entry.name.lower().endswith(".txt"):
                        out.append(prefix + entry.name)
        except OSError:
            continue
    return sorted(out)


def _unwanted(rel: str) -> bool:
    """Documentation files, and minimum-version pins (a second, conflicting set: tests-min.txt)."""
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    return bool(set(re.split(r"[-_.]", stem)) & _UNWANTED_TOKENS) or "doc" in stem


def python_version_of(rel: str) -> tuple[int, int] | None:
    """The Python a requirement file is for, when its name says so: ``requirements-tests39.txt``,
    ``requirements-py310.txt``, ``test-requirements-3.8.txt`` -> (3, 9), (3, 10), (3, 8)."""
    name = posixpath.basename(rel)
    m = _PY_SUFFIX.search(name[:-4] if name.lower().endswith(".txt") else name)
    return (3, int(m.group(1))) if m else None


def for_python(files: list[str], python: tuple[int, int]) -> tuple[list[str], list[str]]:
    """(files to read, files left out) for an environment on ``python``.

    Projects that pin per Python version (one compiled file per version) keep a set of
    files that conflict with each other; the one for the newest version not above
    ``python`` is the one its own CI would use there. Files without a version all stay.
    """
    versions = {rel: python_version_of(rel) for rel in files}
    fitting = [v for v in versions.values() if v is not None and v <= python]
    chosen = max(fitting) if fitting else None
    keep = [rel for rel in files if versions[rel] is None or versions[rel] == chosen]
    return keep, [rel for rel in files if rel not in keep]


def requirement_files_for_tests(tree: Path, python: tuple[int, int]) -> list[str]:
    """Test / development requirement files of the tree, sorted (only those for ``python`` where
    files are kept per Python version)."""
    found = [rel for rel in _listing(tree) if _TEST_FILE.match(rel) and not _unwanted(rel)]
    return for_python(found, python)[0]


def lock_candidate_files(tree: Path, python: tuple[int, int]) -> list[str]:
    """``requirements*.txt`` and ``requirements/*.txt`` (documentation files left out; only those for
    ``python`` where files are kept per Python version), runtime first."""
    found = [rel for rel in _listing(tree) if _LOCK_CANDIDATE.match(rel) and not _unwanted(rel)]
    found = for_python(found, python)[0]
    return sorted(found, key=lambda rel: (rel != "requirements.txt", bool(_TEST_FILE.match(rel)), rel))


def left_out_for_python(tree: Path, python: tuple[int, int]) -> list[tuple[str, tuple[int, int]]]:
    """Requirement files kept for another Python version than ``python`` (not read), with that version."""
    found = [rel for rel in _listing(tree) if (_LOCK_CANDIDATE.match(rel) or _TEST_FILE.match(rel))
             and not _unwanted(rel)]
    return [(rel, version) for rel in for_python(found, python)[1] if (version := python_version_of(rel))]
