"""Running one untrusted command: :func:`run_isolated` (the package docstring says what it guarantees)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.isolation import backend as _backend
from noa_core.isolation.launch import backend_argv
from noa_core.isolation.limits import PidsCgroup, limits_prefix
from noa_core.isolation.policy import Plan, is_within, real_python, sandbox_env
from noa_core.isolation.result import DOCKER_BACKEND, Backend, ExecResult, IsolationError, IsolationUnavailable

# Exit code used by our own launch steps when they fail before the command starts.
_SETUP_FAILED = 125
_READY = b"noa-ready"


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit * 4))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text[-limit:] if limit > 0 else ""


def _signal_name(num: int) -> str | None:
    try:
        return signal.Signals(num).name
    except ValueError:
        return None


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: PidsCgroup | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.kill_all()


def run_isolated(
    argv: Sequence[str],
    workdir: Path,
    limits: ExecLimits,
    *,
    env: Mapping[str, str] | None = None,
    readonly_paths: Iterable[str | os.PathLike[str]] = (),
    hide_paths: Iterable[str | os.PathLike[str]] = (),
    stdout_path: Path | None = None,
    merge_stderr: bool = False,
    backend: Backend | None = None,
) -> ExecResult:
    """Run ``argv`` isolated, with ``workdir`` as its only writable place and its cwd.

    ``env`` adds to a minimal environment (PATH, LANG, HOME=/tmp/home, TMPDIR,
    PYTHONDONTWRITEBYTECODE); nothing else from this process is passed on.
    ``readonly_paths`` are made visible read-only (also inside hidden places or the work
    dir); ``hide_paths`` are hidden in addition to :data:`DEFAULT_HIDE_PATHS` and
    ``$NOA_HOME``. Output goes to ``stdout_path`` when given (the whole of it; the
    result keeps a tail), stderr too with ``merge_stderr``.

    ``killed_by`` is the signal that ended the command: SIGKILL after the wall-clock
    timeout, or the one the sandbox reported as exit status 128+N (SIGXCPU for the CPU
    limit, for example).
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise IsolationError("argv must be a non-empty list of strings")
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise IsolationError(f"work dir {workdir} does not exist")
    real_work = os.path.realpath(workdir)
    for precious in ("/", sys.prefix, sys.base_prefix, os.path.dirname(real_python())):
        if is_within(os.path.realpath(precious), real_work):
            raise IsolationError(f"work dir {workdir} would make {precious} writable to the sandbox")
    chosen: Backend = backend or _backend.isolation_backend()
    if chosen == DOCKER_BACKEND:
        from noa_core.isolation.docker import run_in_container

        return run_in_container(argv, workdir, limits, env=sandbox_env(env), readonly_paths=readonly_paths,
                                stdout_path=stdout_path, merge_stderr=merge_stderr)
    if backend is not None:
        ok, why = _backend._probe(backend)
        if not ok:
            raise IsolationUnavailable(f"isolation backend {backend} does not work here: {why}")

    box_env = sandbox_env(env)
    plan = Plan.build(workdir, limits, box_env, readonly_paths, hide_paths, argv0=argv[0])
    cgroup = PidsCgroup.create(limits.max_processes)
    applied: list[str] = []
    tail_chars = int(limits.output_tail_chars)

    with tempfile.TemporaryDirectory(prefix="noa-exec-") as scratch:
        out_path = Path(stdout_path) if stdout_path is not None else Path(scratch) / "stdout"
        err_path = Path(scratch) / "stderr"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        status_r, status_w = os.pipe()
        try:
            launch = backend_argv(chosen, argv, plan, status_w)
            prefix, applied = limits_prefix(limits, set_nproc=cgroup is None and os.geteuid() != 0)
            launch = prefix + launch
            if cgroup is not None:
                launch = ["/bin/sh", "-c", 'echo $$ > "$1" || exit 125; shift; exec "$@"', "noa-cgroup",
                          str(cgroup.path / "cgroup.procs"), *launch]
                applied.append("pids-cgroup")
            with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
                start = time.monotonic()
                proc = subprocess.Popen(
                    launch,
                    stdin=subprocess.DEVNULL,
                    stdout=out_fh,
                    stderr=subprocess.STDOUT if merge_stderr else err_fh,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                    start_new_session=True,
                    pass_fds=(status_w,),
                    close_fds=True,
                )
                os.close(status_w)
                status_w = -1
                timed_out = False
                try:
                    rc = proc.wait(timeout=float(limits.wall_seconds))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_tree(proc, cgroup)
                    rc = proc.wait()
                except BaseException:
                    _kill_tree(proc, cgroup)
                    proc.wait()
                    raise
                finally:
                    if cgroup is not None:
                        cgroup.remove()
                seconds = time.monotonic() - start
            os.set_blocking(status_r, False)
            try:
                status = os.read(status_r, 64)
            except BlockingIOError:
                status = b""
        finally:
            os.close(status_r)
            if status_w != -1:
                os.close(status_w)

        stdout = _tail(out_path, tail_chars)
        stderr = "" if merge_stderr else _tail(err_path, tail_chars)

    if status != _READY and not timed_out:
        detail = (stderr or stdout).strip().splitlines()[-3:]
        raise IsolationError(f"sandbox setup failed ({chosen}, exit {rc}): " + " | ".join(detail))

    killed_by: str | None = None
    if timed_out:
        killed_by = "SIGKILL"
    elif rc < 0:
        killed_by = _signal_name(-rc)
    elif rc > 128:
        killed_by = _signal_name(rc - 128)
    return ExecResult(
        returncode=rc if rc >= 0 else 128 - rc,
        stdout=stdout,
        stderr=stderr,
        seconds=round(seconds, 3),
        timed_out=timed_out,
        killed_by=killed_by,
        isolation=chosen,
        limits_applied=tuple(applied),
    )
