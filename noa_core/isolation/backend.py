"""Which backend isolates here: each is tried for real once (a trivial command must run and see
no network), ``NOA_ISOLATION_BACKEND`` may force one, and none working is an error."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.isolation.launch import backend_argv
from noa_core.isolation.policy import Plan, real_python, sandbox_env
from noa_core.isolation.result import BACKEND_ENV, BACKENDS, DOCKER_BACKEND, Backend, IsolationUnavailable


_probe_lock = threading.Lock()
_probe_cache: dict[str, tuple[bool, str]] = {}


def _probe(backend: Backend) -> tuple[bool, str]:
    """Try the backend for real once (cached): a trivial command must run and see no network."""
    with _probe_lock:
        if backend in _probe_cache:
            return _probe_cache[backend]
        check = (
            "import sys\n"
            "devs=[l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
            "sys.exit(0 if devs in ([], ['lo']) else 3)\n"
        )
        argv = [real_python(), "-I", "-S", "-c", check]
        r, w = os.pipe()
        try:
            with tempfile.TemporaryDirectory(prefix="noa-probe-") as tmp:
                plan = Plan.build(Path(tmp), ExecLimits(), sandbox_env(None), (), ())
                launch = backend_argv(backend, argv, plan, w)
                proc = subprocess.run(
                    launch, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, pass_fds=(w,),
                )
            ok = proc.returncode == 0
            why = "" if ok else (proc.stderr.decode(errors="replace").strip()[-300:] or f"exit {proc.returncode}")
        except (OSError, subprocess.SubprocessError) as exc:
            ok, why = False, str(exc)
        finally:
            os.close(r)
            os.close(w)
        _probe_cache[backend] = (ok, why)
        return ok, why


def isolation_backend(*, refresh: bool = False) -> Backend:
    """The backend :func:`run_isolated` uses here: ``"bwrap"`` or ``"unshare"``.

    Raises :class:`IsolationUnavailable` when none works (never falls back to running
    without isolation).
    """
    if refresh:
        with _probe_lock:
            _probe_cache.clear()
    forced = os.environ.get(BACKEND_ENV, "").strip()
    if forced == DOCKER_BACKEND:
        return DOCKER_BACKEND
    if forced:
        if forced not in BACKENDS:
            raise IsolationUnavailable(f"{BACKEND_ENV}={forced!r}: expected one of {', '.join(BACKENDS)}")
        ok, why = _probe(forced)  # type: ignore[arg-type]
        if not ok:
            raise IsolationUnavailable(f"isolation backend {forced} (forced by {BACKEND_ENV}) does not work: {why}")
        return forced  # type: ignore[return-value]
    reasons = []
    for backend in BACKENDS:
        ok, why = _probe(backend)
        if ok:
            return backend
        reasons.append(f"{backend}: {why}")
    raise IsolationUnavailable(
        "cannot isolate untrusted commands (install bubblewrap: apt-get install -y bubblewrap); "
        + "; ".join(reasons)
    )
