"""Run untrusted commands: no network, a private writable copy, a read-only host, limits.

Dropped code (its tests, builds, benchmarks) never runs directly on the host. Each
command runs in fresh namespaces (user, mount, pid, network, ipc, uts) with:

* the host file system mounted read-only, except the one work directory given, which is
  bound read-write; ``/tmp`` (and ``HOME`` inside it) is a private, size-capped tmpfs;
* sensitive places hidden behind empty read-only tmpfs mounts (home directories, ``/run``
  with its sockets, ``NOA_HOME``, ``/etc/shadow`` ...), see :data:`DEFAULT_HIDE_PATHS`;
* no network at all (only a loopback device that is down / unconnected to the host's);
* a minimal environment: the parent's environment is never inherited;
* every capability dropped, no new privileges, no nested user namespaces;
* resource limits: RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_FSIZE, no core files, a pids
  cgroup for the process count when the host offers one, and a wall-clock timeout that
  kills the whole process tree. When the command's main process ends, everything it
  left running in its pid namespace is killed with it.

Two backends do this: bubblewrap (``bwrap``) where it works, else util-linux ``unshare``
with a small in-namespace bootstrap that does the same mounts. If neither works,
:class:`IsolationUnavailable` is raised: there is no unisolated path.

Set ``NOA_ISOLATION_BACKEND=bwrap|unshare`` to force one backend (an unusable forced
backend raises instead of falling back). ``NOA_ISOLATION_BACKEND=docker`` runs each command
in its own network-less container instead (:mod:`noa_core.isolation.docker`; what swarm
flow runs of the docker work pool use, where bubblewrap cannot run).

One module per job: :mod:`~noa_core.isolation.policy` (what the sandbox sees),
:mod:`~noa_core.isolation.bwrap` and :mod:`~noa_core.isolation.unshare` (the two local
backends), :mod:`~noa_core.isolation.docker` (the container backend),
:mod:`~noa_core.isolation.limits` (rlimits, pids cgroup), :mod:`~noa_core.isolation.backend`
(which backend works here), :mod:`~noa_core.isolation.runner` (one run) and
:mod:`~noa_core.isolation.workcopy` (private copies).
"""

from noa_core.isolation.backend import isolation_backend
from noa_core.isolation.policy import DEFAULT_HIDE_PATHS, SANDBOX_HOME
from noa_core.isolation.result import BACKEND_ENV, ExecResult, IsolationError, IsolationUnavailable
from noa_core.isolation.runner import run_isolated
from noa_core.isolation.workcopy import make_work_copy

__all__ = [
    "BACKEND_ENV",
    "DEFAULT_HIDE_PATHS",
    "ExecResult",
    "IsolationError",
    "IsolationUnavailable",
    "SANDBOX_HOME",
    "isolation_backend",
    "make_work_copy",
    "run_isolated",
]
