"""What a code drop is (:class:`SourceSpec`), how one is named on the command line
(:func:`parse_source`), and what fetching one yields (:class:`FetchedSource`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from noa_core.errors import BadInput
from noa_core.intake.archive import archive_format
from noa_core.intake.git import is_git_dir
from noa_core.intake.guards import quote
from noa_core.intake.pypi import valid_name, valid_version

SourceKind = Literal["dir", "git", "archive", "pypi"]
SOURCE_KINDS: tuple[str, ...] = ("dir", "git", "archive", "pypi")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:")


@dataclass(frozen=True)
class SourceSpec:
    """A code drop to fetch.

    ``value`` is an absolute path (dir, archive, local git repository), a git URL
    (``https://`` or ``file://``) or a PyPI project name; ``version`` is for PyPI only
    (None: the latest final release that has an sdist).
    """

    kind: SourceKind
    value: str
    version: str | None = None

    def __str__(self) -> str:
        if self.kind == "pypi":
            return f"pypi:{self.value}" + (f"=={self.version}" if self.version else "")
        return self.value


@dataclass(frozen=True)
class FetchedSource:
    """A fetched drop: plain files under ``tree`` (no ``.git``, no links)."""

    spec: SourceSpec
    tree: Path
    name_hint: str
    head_commit: str | None
    root_commits: tuple[str, ...]
    bytes_total: int
    files_total: int
    meta: dict[str, Any] = field(default_factory=dict)


def parse_source(text: str) -> SourceSpec:
    """Recognise a SOURCE argument; :class:`BadInput` with a one-line reason otherwise.

    * ``pypi:NAME==VERSION`` (or ``pypi:NAME`` for the latest release);
    * ``https://...`` and ``file://...`` (also ``git+https://``, ``git+file://``): git;
    * an existing directory: git if it holds ``.git`` or is a bare repository, else dir;
    * an existing ``.tar.gz``/``.tgz``/``.tar``/``.tar.bz2``/``.tar.xz``/``.zip`` file.

    ssh, ``git://``, ``http://``, ``ext::`` and other transports are refused, as are
    remote archive URLs and credentials inside URLs.  Local paths are made absolute.
    """
    if not isinstance(text, str):
        raise BadInput(f"source must be a string, not {type(text).__name__}")
    s = text.strip()
    if not s:
        raise BadInput("empty source: give a directory, a git URL, an archive or pypi:NAME==VERSION")
    if any(c in s for c in "\x00\r\n"):
        raise BadInput(f"refused source {quote(s)}: control character")

    if s.lower().startswith("pypi:"):
        return _parse_pypi(s)

    m = _SCHEME.match(s)
    if m:
        return _parse_url(s, m.group(1).lower())

    path = Path(os.path.expanduser(s))
    if os.path.lexists(path):
        return _parse_path(s, path)
    if _SCP_LIKE.match(s) or "::" in s:
        raise BadInput(f"refused source {quote(s)}: ssh and transport-helper git locations are not accepted "
                       "(use https:// or file://)")
    raise BadInput(f"no such file or directory: {quote(s)}")


def _parse_pypi(s: str) -> SourceSpec:
    rest = s[5:].strip()
    name, sep, version = rest.partition("==")
    name, version = name.strip(), version.strip()
    if not sep and re.search(r"[<>=!~@ ;\[]", rest):
        raise BadInput(f"refused source {quote(s)}: use pypi:NAME==VERSION (only exact versions)")
    if not valid_name(name):
        raise BadInput(f"refused source {quote(s)}: {quote(name)} is not a valid PyPI project name")
    if sep and not version:
        raise BadInput(f"refused source {quote(s)}: version missing after '=='")
    if sep and not valid_version(version):
        raise BadInput(f"refused source {quote(s)}: {quote(version)} is not a valid version")
    return SourceSpec("pypi", name, version or None)


def _parse_url(s: str, scheme: str) -> SourceSpec:
    if scheme in ("git+https", "git+file"):
        s = s[4:]
        scheme = scheme[4:]
    if scheme == "https":
        parts = urlsplit(s)
        if not parts.hostname:
            raise BadInput(f"refused source {quote(s)}: URL has no host")
        if parts.username or parts.password:
            raise BadInput(f"refused source {quote(s)}: credentials in URLs are not accepted")
        if any(c.isspace() for c in s):
            raise BadInput(f"refused source {quote(s)}: whitespace in URL")
        if archive_format(parts.path.rstrip("/")) is not None:
            raise BadInput(f"refused source {quote(s)}: remote archives are not fetched; download it first "
                           "or use pypi:NAME==VERSION")
        if parts.path.strip("/") == "":
            raise BadInput(f"refused source {quote(s)}: URL names no repository")
        return SourceSpec("git", s)
    if scheme == "file":
        parts = urlsplit(s)
        if parts.netloc not in ("", "localhost"):
            raise BadInput(f"refused source {quote(s)}: file:// URLs must name a local path")
        local = unquote(parts.path)
        if not local.startswith("/"):
            raise BadInput(f"refused source {quote(s)}: file:// URL needs an absolute path")
        if not os.path.isdir(local):
            raise BadInput(f"no such git repository: {quote(s)}")
        return SourceSpec("git", s)
    raise BadInput(f"refused source {quote(s)}: unsupported URL scheme {scheme!r} "
                   "(only https:// and file:// git URLs are accepted)")


def _parse_path(s: str, path: Path) -> SourceSpec:
    resolved = path.resolve()
    if resolved.is_dir():
        if is_git_dir(resolved):
            return SourceSpec("git", str(resolved))
        return SourceSpec("dir", str(resolved))
    if resolved.is_file():
        if archive_format(resolved.name) is not None:
            return SourceSpec("archive", str(resolved))
        raise BadInput(f"refused source {quote(s)}: unsupported file type (expected a directory, .tar.gz, "
                       ".tgz, .tar, .tar.bz2, .tar.xz or .zip)")
    if not resolved.exists():
        raise BadInput(f"no such file or directory: {quote(s)} (dangling symlink)")
    raise BadInput(f"refused source {quote(s)}: not a regular file or directory")


__all__ = ["SOURCE_KINDS", "FetchedSource", "SourceKind", "SourceSpec", "parse_source"]
