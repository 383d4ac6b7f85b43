"""What a sandbox sees: the hidden places, the read-only ones, the one writable work directory and
the minimal environment, resolved on the host into a :class:`Plan` that every backend follows."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.isolation.result import IsolationError

SANDBOX_TMP = "/tmp"
_NOA_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../noa_core
SANDBOX_HOME = "/tmp/home"

#: Hidden (replaced by an empty read-only tmpfs, or /dev/null for files) in every run,
#: when they exist. ``NOA_HOME`` (from the environment) is added at run time.
DEFAULT_HIDE_PATHS: tuple[str, ...] = (
    "/root",
    "/home",
    "/run",  # unix sockets of local services (PostgreSQL, MariaDB, docker, dbus ...)
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/ssh",
    "/var/lib/docker",
    "/var/spool/cron",
)


def real_python() -> str:
    """The interpreter NOA runs under, symlinks resolved (what runs inside the sandbox)."""
    return os.path.realpath(sys.executable)


def _norm(p: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(p)))


def is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _drop_nested(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in sorted(set(paths), key=lambda s: (s.count("/"), s)):
        if not any(is_within(p, q) for q in out):
            out.append(p)
    return out


@dataclass(frozen=True)
class Plan:
    """Everything both backends need, with paths resolved on the host."""

    workdir: str
    hide_dirs: tuple[str, ...]
    hide_files: tuple[str, ...]
    readonly: tuple[str, ...]  # bound read-only after the work dir (may re-expose hidden places)
    env: dict[str, str]
    limits: ExecLimits

    @classmethod
    def build(
        cls,
        workdir: Path,
        limits: ExecLimits,
        env: Mapping[str, str],
        readonly_paths: Iterable[str | os.PathLike[str]],
        hide_paths: Iterable[str | os.PathLike[str]],
        argv0: str | None = None,
    ) -> "Plan":
        work = os.path.realpath(workdir)
        hide_candidates = [*DEFAULT_HIDE_PATHS, *(os.fspath(p) for p in hide_paths)]
        noa_home = os.environ.get("NOA_HOME")
        if noa_home:
            hide_candidates.append(noa_home)
        hide_dirs, hide_files = [], []
        for raw in hide_candidates:
            p = os.path.realpath(_norm(raw))
            if p == "/" or is_within(p, SANDBOX_TMP) or is_within(p, "/proc") or is_within(p, "/dev"):
                continue  # already private in the sandbox, or not hideable
            if is_within(p, work):
                continue  # the work dir is the sandbox's own
            try:
                st = os.stat(p)
            except OSError:
                continue
            (hide_dirs if stat.S_ISDIR(st.st_mode) else hide_files).append(p)
        hide_dirs = _drop_nested(hide_dirs)
        hide_files = [f for f in set(hide_files) if not any(is_within(f, d) for d in hide_dirs)]

        # What the command needs to see even when it lies in a hidden place: the
        # interpreter NOA runs under (its venv and its base installation), the command's
        # own executable, and whatever the caller asked for.
        wanted = [os.path.realpath(_norm(p)) for p in readonly_paths]
        # NOA's own package too (read-only): the swarm loads its pytest plugin from it.
        implicit = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                    os.path.dirname(real_python()), _NOA_PACKAGE_DIR}
        if argv0:
            exe = argv0 if os.sep in argv0 else shutil.which(argv0, path=env.get("PATH"))
            if exe:
                implicit.add(os.path.dirname(os.path.realpath(exe)))
        for p in implicit:
            rp = os.path.realpath(p)
            # re-expose what a hidden place or the private /tmp would otherwise cover
            # (a venv under /tmp, as in a CI checkout there)
            if is_within(rp, SANDBOX_TMP) or any(is_within(rp, h) for h in hide_dirs):
                wanted.append(rp)
        readonly = [p for p in dict.fromkeys(wanted) if os.path.exists(p)]
        return cls(work, tuple(sorted(hide_dirs)), tuple(sorted(hide_files)), tuple(readonly), dict(env), limits)


def sandbox_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": SANDBOX_HOME,
        "TMPDIR": SANDBOX_TMP,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or "=" in k or "\0" in k + v:
            raise IsolationError(f"bad environment entry {k!r}")
        env[k] = v
    return env
