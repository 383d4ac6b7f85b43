"""Refusing local repositories that carry code git would run.

NOA never runs git inside a received repository (it clones with ``--no-local``), so a
hook or a ``core.fsmonitor`` in it cannot fire during a drop. It is still a sign of a
hostile or booby-trapped repository, and anyone who later runs ``git status`` in the
original would trigger it; NOA refuses such a source by default and says which
setting it found. ``IngestLimits.refuse_repo_code = False`` accepts them (nothing is
ever run either way).

Everything here *reads* files: ``.git/config`` is parsed as text, hooks are listed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from noa_core.errors import HostileInput

# Config keys whose value git executes (or hands to a shell) in ordinary commands.
_RUNNING_KEYS = re.compile(
    r"^(core\.(fsmonitor|hookspath|sshcommand|pager|editor|askpass|gitproxy)"
    r"|filter\..+\.(clean|smudge|process)"
    r"|diff\..+\.(textconv|command)"
    r"|merge\..+\.driver"
    r"|credential\.helper"
    r"|uploadpack\.packobjectshook"
    r"|sequence\.editor|gpg\.program|alias\..+)$"
)
_SECTION = re.compile(r'^\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]')
_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*)\s*(=|$)")
_MAX_CONFIG = 1024 * 1024


def _git_dir(repo: Path) -> Path | None:
    dot = repo / ".git"
    if dot.is_dir() and not dot.is_symlink():
        return dot
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo  # a bare repository
    return None


def running_config_keys(config_text: str) -> list[str]:
    """Keys in a git config file whose values git would execute, lower-cased."""
    found: list[str] = []
    section = ""
    for raw in config_text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0] if not raw.lstrip().startswith("[") else raw
        m = _SECTION.match(line)
        if m:
            name, sub = m.group(1).lower(), m.group(2)
            if "." in name and sub is None:  # [filter.evil] old-style subsection
                head, _, tail = name.partition(".")
                name, sub = head, tail
            section = f"{name}.{sub}" if sub is not None else name
            rest = line[m.end():]
            if not rest.strip():
                continue
            line = rest
        k = _KEY.match(line)
        if k and section:
            key = f"{section}.{k.group(1).lower()}"
            if _RUNNING_KEYS.match(key) and key not in found:
                found.append(key)
    return found


def active_hooks(git_dir: Path) -> list[str]:
    hooks = git_dir / "hooks"
    if not hooks.is_dir() or hooks.is_symlink():
        return []
    names = []
    for entry in sorted(os.scandir(hooks), key=lambda e: e.name):
        if entry.name.endswith(".sample"):
            continue
        if entry.is_symlink() or (entry.is_file(follow_symlinks=False) and os.access(entry.path, os.X_OK)):
            names.append(entry.name)
    return names


def refuse_code_carrying_repo(repo: Path) -> None:
    """Raise HostileInput if the local repository at ``repo`` carries code git would run."""
    git_dir = _git_dir(repo)
    if git_dir is None:
        return
    reasons: list[str] = []
    config = git_dir / "config"
    if config.is_symlink():
        reasons.append("its config is a symlink")
    elif config.is_file():
        with open(config, "rb") as fh:
            text = fh.read(_MAX_CONFIG).decode("utf-8", "replace")
        keys = running_config_keys(text)
        if keys:
            reasons.append("config sets " + ", ".join(keys[:4]) + (" ..." if len(keys) > 4 else ""))
    hooks = active_hooks(git_dir)
    if hooks:
        reasons.append("active hooks " + ", ".join(hooks[:4]) + (" ..." if len(hooks) > 4 else ""))
    if reasons:
        raise HostileInput(f"refused git repository {str(repo)!r}: {'; '.join(reasons)} (git would run them; "
                           "NOA runs none, set NOA_INGEST__REFUSE_REPO_CODE=false to accept such a source)")
