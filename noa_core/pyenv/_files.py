"""Bounded, link-refusing reads of a dropped project's declaration files, and PEP 508 checks.

Every declaration file (pyproject.toml, setup.cfg, setup.py, tox.ini, requirement files,
lock files) is read through :func:`read_declaration`: the path must stay inside the tree,
no symbolic link is followed (neither a directory on the way nor the file itself), only
regular files are read, and the size is capped. A problem is a :class:`DeclarationError`
whose message is a short note for the report, never a traceback.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from noa_core.sourcetree import safe_fs

#: pyproject.toml, setup.cfg, setup.py, tox.ini and requirement files.
MAX_DECLARATION_BYTES = 1024 * 1024
#: Lock files of big projects run to a few MB.
MAX_LOCK_BYTES = 16 * 1024 * 1024


class DeclarationError(ValueError):
    """A declaration file cannot be read or parsed; the message is a one-line note."""


def normalise_rel(rel: str) -> str | None:
    """``rel`` as a clean POSIX path inside the tree, or None when it leaves it (absolute, ``..``)."""
    if not rel or "\x00" in rel or rel.startswith("/") or "\\" in rel:
        return None
    clean = posixpath.normpath(rel)
    if clean in (".", "", "..") or clean.startswith(("../", "/")):
        return None
    return clean


def probe(tree: Path, rel: str) -> str:
    """``"file"``, ``"link"`` (a symbolic link on the way or at the end), ``"missing"`` or ``"other"``."""
    clean = normalise_rel(rel)
    if clean is None:
        return "other"
    current = Path(tree)
    parts = PurePosixPath(clean).parts
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            return "missing"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(st.st_mode):
            return "missing"
        if last:
            return "file" if stat.S_ISREG(st.st_mode) else "other"
    return "missing"


def exists(tree: Path, rel: str) -> bool:
    return probe(tree, rel) == "file"


def read_declaration(tree: Path, rel: str, cap: int = MAX_DECLARATION_BYTES) -> str:
    """The text of ``rel`` (UTF-8, undecodable bytes replaced), or :class:`DeclarationError`."""
    clean = normalise_rel(rel)
    if clean is None:
        raise DeclarationError(f"{rel}: leaves the project tree; refused")
    kind = probe(tree, clean)
    if kind == "link":
        raise DeclarationError(f"{clean}: a symbolic link; not followed")
    if kind == "missing":
        raise DeclarationError(f"{clean}: not found")
    if kind != "file":
        raise DeclarationError(f"{clean}: not a regular file; ignored")
    try:
        data = safe_fs.read_bytes(Path(tree), clean, limit=cap + 1)
    except OSError as exc:
        raise DeclarationError(f"{clean}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise DeclarationError(f"{clean}: larger than {cap} bytes; ignored")
    return data.decode("utf-8", errors="replace")


def parse_requirement(raw: str) -> Requirement | str:
    """A :class:`Requirement`, or the reason ``raw`` is not a PEP 508 requirement (one line)."""
    try:
        return Requirement(raw)
    except InvalidRequirement as exc:
        return " ".join(str(exc).split())[:200]


def is_exact_pin(req: Requirement) -> bool:
    """``name==version`` (or ``===``), one specifier, no wildcard, no URL."""
    if req.url:
        return False
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def requirement_key(req: Requirement) -> str:
    """What makes two requirements the same, whatever their spelling."""
    extras = ",".join(sorted(canonicalize_name(e) for e in req.extras))
    specs = ",".join(sorted(str(s) for s in req.specifier))
    return f"{canonicalize_name(req.name)}[{extras}]{specs};{req.marker or ''}@{req.url or ''}"


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_QUERY = re.compile(r"(?P<url>[A-Za-z][A-Za-z0-9+.-]*://[^\s?#]*)\?[^\s#]*")


def redact(text: str) -> str:
    """``text`` with URL credentials (``user:token@``) and query strings masked: notes are shown to users."""
    return _QUERY.sub(r"\g<url>?***", _USERINFO.sub(r"\g<scheme>***@", text))


def short(text: str, limit: int = 120) -> str:
    text = redact(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Part:
    """Requirements from one place, as written there (validated later, in one place)."""

    source: str
    requirements: tuple[str, ...]
    runtime: bool = False   # the project's own install requirements (not an extra, group or test file)


@dataclass
class Reading:
    """What one declaration file contributes: its parts in order, notes, and its metadata."""

    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extras: dict[str, list[str]] = field(default_factory=dict)  # every extra it declares (self-references)
    name: str | None = None
    python_requires: str | None = None
    runtime_declared: bool = False   # it states the runtime dependencies statically (even as an empty list)
    present: bool = False
    defines_package: bool = False    # it describes a distribution setuptools can build
