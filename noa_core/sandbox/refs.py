"""The sandbox branches of the workspace repository: reading them, moving them by compare-and-swap, locks.

A branch moves only with ``update-ref <ref> <new> <old>``: git refuses when the branch is no
longer at ``old`` (somebody moved it meanwhile), and NOA retries on top of the new head, at most
:data:`CAS_ATTEMPTS` times, before it gives up with :class:`ConcurrentUpdate`. Writers of one
sandbox also serialise on a per-sandbox lock file (:func:`flock`).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from noa_core.sandbox.git import Git, GitError, WorkspaceError
from noa_core.sandbox.sandboxes import Sandbox

CAS_ATTEMPTS = 8


class ConcurrentUpdate(WorkspaceError):
    """A branch kept moving under NOA's compare-and-swap; nothing was changed."""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace or unprintable characters made one space."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


@contextmanager
def flock(path: Path) -> Iterator[None]:
    """An exclusive lock between threads and processes (each call opens its own file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_heads(git: Git) -> dict[Sandbox, str]:
    """Every existing sandbox branch's head, read at once."""
    out = git.out("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/sandbox/")
    by_ref = dict(line.split(" ", 1) for line in out.splitlines() if line)
    return {sb: by_ref[sb.ref] for sb in Sandbox if sb.ref in by_ref}


def update_ref(git: Git, ref: str, new: str, old: str | None, reason: str) -> bool:
    """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``; False if it moved."""
    proc = git.run("update-ref", "-m", one_line(reason)[:200], ref, new, old or "", check=False)
    if proc.returncode == 0:
        return True
    stderr = proc.stderr.decode("utf-8", "replace")
    if "cannot lock ref" in stderr or "already exists" in stderr:
        return False
    raise GitError(("update-ref", ref, new), proc.returncode, stderr)


def remove_stale_tmp_refs(git: Git, max_age_s: float = 3600.0) -> None:
    """Private refs ``refs/noa/tmp/<time>-...`` older than ``max_age_s`` (left by a landing or a
    merge that was killed before its clean-up)."""
    out = git.out("for-each-ref", "--format=%(refname)", "refs/noa/tmp/")
    cutoff = time.time() - max_age_s
    for ref in out.splitlines():
        stamp = ref.rsplit("/", 1)[-1].split("-", 1)[0]
        if stamp.isdigit() and int(stamp) < cutoff:
            git.run("update-ref", "-d", ref, check=False)
