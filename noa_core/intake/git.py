"""Receiving a git repository without ever running git inside it.

The received repository is only ever read by ``git clone --bare --no-local``: that
runs ``git-upload-pack`` over it, which reads objects and refs and executes nothing
from the repository (no hooks, fsmonitor, filters or submodules).  Everything else
runs in NOA's own bare clone (:mod:`noa_core.intake.git_runner`), with:

* a clean environment: ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``,
  ``HOME``/``XDG_CONFIG_HOME``/``TMPDIR`` inside the work directory, no prompts,
  ``GIT_PROTOCOL_FROM_USER=0``, an empty template directory, replace refs ignored;
* ``-c`` options: hooks path ``/dev/null``, fsmonitor off, symlinks off, submodules
  off, ``transfer.fsckObjects``, and a protocol allow-list of ``https`` and ``file``
  only (``ext``, ``ssh``, ``git`` and ``http`` never).

Before anything is materialised, ``git ls-tree -r -l -z HEAD`` is checked: symlinks
(mode 120000) and gitlinks/submodules (160000) are refused, names go through
:func:`~noa_core.intake.guards.clean_relpath`, and blob sizes, file count and total
size are checked against the limits.  Files are then written from
``git cat-file --batch`` (raw blobs: no checkout, no attributes, no filters).

What is fetched is the commit at the source's HEAD: for a local work tree, uncommitted
and untracked changes are not part of the drop.  https and ``file://`` clones are full
clones, so ``root_commits`` are the real roots;
if the source itself is shallow, ``meta["shallow"]`` is True and ``root_commits`` is
empty because the real roots are unknown.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput, LimitExceeded, NoaError
from noa_core.intake.git_runner import HardenedGit, kill_group
from noa_core.intake.guards import SafeTree, quote
from noa_core.intake.repo_config import refuse_code_carrying_repo

_MODE_FILE = "100644"
_MODE_EXEC = "100755"
_LEGACY_FILE_MODES = {"100664", "100600", "100640", "100660", "100444", "100000"}


@dataclass(frozen=True)
class GitResult:
    head_commit: str
    root_commits: tuple[str, ...]
    meta: dict[str, Any]


def is_git_dir(path: Path) -> bool:
    """True for a work tree with ``.git`` (dir, file or link) or a bare repository."""
    if os.path.lexists(path / ".git"):
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def repo_name_hint(value: str) -> str:
    """``https://host/org/name.git`` -> ``name``; ``/x/name/.git`` -> ``name``."""
    path = urlsplit(value).path if "://" in value else value
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    while parts and parts[-1] == ".git":
        parts.pop()
    name = parts[-1] if parts else "repo"
    if name.endswith(".git"):
        name = name[:-4]
    return name or "repo"


def check_git_location(value: str) -> str:
    """Return the clone argument for ``value``; refuses every transport but https/file/local."""
    if "\n" in value or "\x00" in value or "\r" in value:
        raise BadInput(f"refused git source {quote(value)}: control character in location")
    low = value.lower()
    if low.startswith("https://"):
        parts = urlsplit(value)
        if not parts.hostname:
            raise BadInput(f"refused git source {quote(value)}: URL has no host")
        if parts.username or parts.password:
            raise BadInput(f"refused git source {quote(value)}: credentials in URLs are not accepted")
        return value
    if low.startswith("file://"):
        return value
    if "://" in value or "::" in value:
        raise BadInput(f"refused git source {quote(value)}: only https://, file:// and local paths are accepted")
    if not os.path.isabs(value):
        raise BadInput(f"refused git source {quote(value)}: local repositories need an absolute path")
    return value


def fetch_git(location: str, tree: SafeTree, work: Path, limits: IngestLimits) -> GitResult:
    """Clone ``location`` into ``work`` and write HEAD's files into ``tree``."""
    arg = check_git_location(location)
    remote = arg.lower().startswith("https://")
    if not remote and limits.refuse_repo_code:
        local = arg[len("file://"):] if arg.lower().startswith("file://") else arg
        refuse_code_carrying_repo(Path(local))
    git = HardenedGit(work, limits, location)
    git.clone(arg, remote)
    head = git.head()
    shallow = (git.clone_dir / "shallow").exists()

    entries: list[tuple[tuple[str, ...], str, str, int, str]] = []
    total = 0
    listing = contextlib.closing(git.ls_tree(head))
    with listing as entries_iter:
        for mode, otype, oid, size_text, path in entries_iter:
            _check_entry(tree, limits, entries, mode, otype, oid, size_text, path)
            total += int(size_text) if size_text.isdigit() else 0
            if total > limits.max_total_bytes:
                raise tree.refuse(LimitExceeded, path,
                                  f"drop would exceed max_total_bytes {limits.max_total_bytes}")
    _materialise(git, tree, entries)

    roots: tuple[str, ...] = ()
    if not shallow:
        out = git.run("rev-list", "--max-parents=0", head).stdout.decode("ascii").split()
        roots = tuple(out)
    ref = git.run("symbolic-ref", "-q", "HEAD", check=False).stdout.decode("utf-8", "replace").strip()
    count = git.run("rev-list", "--count", head).stdout.decode("ascii").strip()
    meta: dict[str, Any] = {
        "git_url": location,
        "head_ref": ref or None,
        "shallow": shallow,
        "commit_count": int(count) if count.isdigit() and not shallow else None,
    }
    special = [p for _parts, p, *_ in entries if p.rsplit("/", 1)[-1] in (".gitmodules", ".gitattributes")]
    if special:
        meta["git_special_files"] = special
    return GitResult(head_commit=head, root_commits=roots, meta=meta)


def _check_entry(tree: SafeTree, limits: IngestLimits, entries: list[tuple[tuple[str, ...], str, str, int, str]],
                 mode: str, otype: str, oid: str, size_text: str, path: str) -> None:
    if mode == "120000":
        raise tree.refuse(HostileInput, path, "symlinks are not accepted in git sources")
    if mode == "160000" or otype == "commit":
        raise tree.refuse(HostileInput, path, "submodules (gitlinks) are not accepted; they are never fetched")
    if otype != "blob" or not (mode in (_MODE_FILE, _MODE_EXEC) or mode in _LEGACY_FILE_MODES):
        raise tree.refuse(BadInput, path, f"unsupported git tree entry (mode {mode}, type {otype})")
    parts = tree.clean(path)
    size = int(size_text)
    if size > limits.max_file_bytes:
        raise tree.refuse(LimitExceeded, path, f"file is {size} bytes, over max_file_bytes {limits.max_file_bytes}")
    if len(entries) + 1 > limits.max_files:
        raise tree.refuse(LimitExceeded, path, f"drop has more than max_files {limits.max_files} files")
    entries.append((parts, path, oid, size, mode))


def _materialise(git: HardenedGit, tree: SafeTree, entries: list[tuple[tuple[str, ...], str, str, int, str]]) -> None:
    if not entries:
        return
    proc = git.popen("cat-file", "--batch", stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    out: IO[bytes] = proc.stdout
    try:
        for parts, path, oid, size, mode in entries:
            proc.stdin.write(oid.encode("ascii") + b"\n")
            proc.stdin.flush()
            header = out.readline().split()
            if len(header) != 3 or header[1] != b"blob" or header[0].decode("ascii") != oid:
                raise NoaError(f"git cat-file in NOA's clone gave an unexpected answer for {quote(path)}")
            if int(header[2]) != size:
                raise tree.refuse(HostileInput, path, "blob size differs from the tree listing")
            remaining = size

            def read(n: int, _out: IO[bytes] = out) -> bytes:
                nonlocal remaining
                if remaining <= 0:
                    return b""
                data = _out.read(min(n, remaining))
                if not data:
                    raise NoaError(f"git cat-file in NOA's clone ended early while reading {quote(path)}")
                remaining -= len(data)
                return data

            tree.write_file(parts, path, read, executable=(mode == _MODE_EXEC), declared_size=size)
            if out.read(1) != b"\n":
                raise NoaError(f"git cat-file in NOA's clone gave a malformed record for {quote(path)}")
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


__all__ = ["GitResult", "check_git_location", "fetch_git", "is_git_dir", "repo_name_hint"]
