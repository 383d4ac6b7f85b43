"""Running git on the workspace repository with a scrubbed, hardened environment.

Every call ignores the user's and the system's git configuration (so no globally
configured filter driver, hook path or fsmonitor can be reached from dropped
content), disables hooks, fsmonitor and symlinks, and takes no ``GIT_*`` variable
from the caller's environment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from noa_core.errors import NoaError

NOA_NAME = "NOA ARK OS"
NOA_EMAIL = "noa@localhost"

#: Passed as ``-c`` on every call (and so inherited by git's own child processes).
HARDENING: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.symlinks", "false"),
    ("core.attributesFile", os.devnull),
    ("core.autocrlf", "false"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "true"),
    ("protocol.allow", "never"),
)


class WorkspaceError(NoaError):
    """The workspace repository could not do what was asked."""


class GitError(WorkspaceError):
    """A git command failed."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.git_args = tuple(args)
        self.returncode = returncode
        self.stderr = stderr
        first = next((line for line in stderr.splitlines() if line.strip()), "")
        super().__init__(f"git {' '.join(args[:3])} failed (exit {returncode}): {first}")


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every git call: no inherited ``GIT_*``, no global/system config."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("GIT_")}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_AUTHOR_NAME": NOA_NAME,
        "GIT_AUTHOR_EMAIL": NOA_EMAIL,
        "GIT_COMMITTER_NAME": NOA_NAME,
        "GIT_COMMITTER_EMAIL": NOA_EMAIL,
        "LC_ALL": "C",
        "LANGUAGE": "C",
    })
    return env


@dataclass(frozen=True)
class Git:
    """A git runner bound to one repository (``git_dir``) or one worktree (``work_tree``)."""

    git_dir: Path | None = None
    work_tree: Path | None = None
    env: Mapping[str, str] = field(default_factory=git_env)

    def argv(self, args: Sequence[str]) -> list[str]:
        argv = ["git"]
        for key, value in HARDENING:
            argv += ["-c", f"{key}={value}"]
        if self.work_tree is not None:
            argv += ["-C", os.fspath(self.work_tree)]
        elif self.git_dir is not None:
            argv += [f"--git-dir={os.fspath(self.git_dir)}"]
        return argv + list(args)

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        proc = subprocess.run(self.argv(args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, stdin=None if input is not None else subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc

    def out(self, *args: str, input: bytes | None = None, extra_env: Mapping[str, str] | None = None) -> str:
        """stdout of a successful call, decoded, trailing newline stripped."""
        return self.run(*args, input=input, extra_env=extra_env).stdout.decode("utf-8", "surrogateescape").rstrip("\n")

    def ok(self, *args: str) -> bool:
        """True when the command exits 0 (for yes/no plumbing such as ``merge-base --is-ancestor``)."""
        return self.run(*args, check=False).returncode == 0
