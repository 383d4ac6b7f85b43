"""Helpers for the sandbox and registry tests: building dropped trees, reading the repo."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

INSPECT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def write_tree(root: Path, files: Mapping[str, bytes | str], *, executable: tuple[str, ...] = ()) -> Path:
    """Create ``root`` with ``files`` (relative path -> content)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if rel in executable:
            path.chmod(0o755)
    return root


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    """Run git against a bare repository (for inspection in tests) and return stdout."""
    proc = subprocess.run(["git", f"--git-dir={repo}", *args], input=input, capture_output=True,
                          env=INSPECT_ENV, check=True)
    return proc.stdout.decode("utf-8", "surrogateescape")


def ls_files(repo: Path, rev: str, prefix: str = "") -> dict[str, str]:
    """``path -> mode`` of every file at ``rev`` (under ``prefix``)."""
    out = git(repo, "ls-tree", "-r", "-z", "--full-tree", rev, *(["--", prefix] if prefix else []))
    result = {}
    for record in filter(None, out.split("\0")):
        meta, _, path = record.partition("\t")
        result[path] = meta.split(" ")[0]
    return result


def files_on_disk(root: Path) -> set[str]:
    """Relative paths of every non-directory under ``root`` except the worktree's ``.git`` file."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel != ".git":
                found.add(rel.replace(os.sep, "/"))
    return found
