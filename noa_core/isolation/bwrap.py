"""The bubblewrap backend: ``bwrap`` makes the namespaces and mounts of a :class:`~noa_core.isolation.policy.Plan`."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from noa_core.isolation.policy import SANDBOX_HOME, SANDBOX_TMP, Plan, real_python

# Runs inside the sandbox (bwrap backend) just before the command: says "ready" on the
# status pipe, closes it, then becomes the command. Without this "ready", a failed run is
# a sandbox setup failure, not the command's own failure.
READY_SHIM = (
    "import os,sys\n"
    "fd=int(sys.argv[1])\n"
    "os.write(fd,b'noa-ready');os.close(fd)\n"
    "a=sys.argv[2:]\n"
    "try:\n"
    " os.execvp(a[0],a)\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'noa-sandbox: cannot run {a[0]!r}: {e.strerror}\\n');os._exit(127 if isinstance(e,FileNotFoundError) else 126)\n"
)


def bwrap_argv(argv: Sequence[str], plan: Plan, status_fd: int) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` under ``plan``, saying "ready" on ``status_fd``."""
    lim = plan.limits
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    a = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
         "--new-session", "--cap-drop", "ALL"]
    if lim.network:
        a.append("--share-net")
    a += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
          "--size", str(int(lim.tmp_bytes)), "--tmpfs", SANDBOX_TMP, "--dir", SANDBOX_HOME]
    for d in plan.hide_dirs:
        a += ["--size", str(1024 * 1024), "--tmpfs", d]
    for f in plan.hide_files:
        a += ["--ro-bind", "/dev/null", f]
    a += ["--bind", plan.workdir, plan.workdir]
    for p in plan.readonly:
        a += ["--ro-bind", p, p]
    for d in plan.hide_dirs:
        a += ["--remount-ro", d]
    a += ["--chdir", plan.workdir, "--clearenv"]
    for k, v in plan.env.items():
        a += ["--setenv", k, v]
    a += ["--", real_python(), "-I", "-S", "-c", READY_SHIM, str(status_fd), *argv]
    return a
