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
in its own network-less container instead (:mod:`noa_core.isolation_docker`; what swarm
flow runs of the docker work pool use, where bubblewrap cannot run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from noa_core.config import ExecLimits
from noa_core.errors import NoaError

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

Backend = Literal["bwrap", "unshare", "docker"]
BACKENDS: tuple[Backend, ...] = ("bwrap", "unshare")
DOCKER_BACKEND: Backend = "docker"  # only when forced: noa_core.isolation_docker
BACKEND_ENV = "NOA_ISOLATION_BACKEND"

SANDBOX_TMP = "/tmp"
_NOA_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # .../noa_core
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

# Exit code used by our own launch steps when they fail before the command starts.
_SETUP_FAILED = 125
_READY = b"noa-ready"


class IsolationError(NoaError):
    """Isolation could not be set up for this run (bad work dir, sandbox setup failed)."""


class IsolationUnavailable(IsolationError):
    """Neither bubblewrap nor unshare can isolate commands on this host."""


@dataclass(frozen=True)
class ExecResult:
    """What happened to one isolated command."""

    returncode: int
    stdout: str  # tail, at most ExecLimits.output_tail_chars
    stderr: str  # tail ("" when stderr was merged into stdout)
    seconds: float
    timed_out: bool
    killed_by: str | None  # signal name ("SIGKILL", "SIGXCPU", ...) or None
    isolation: Backend
    limits_applied: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


# --------------------------------------------------------------------------- backend


_probe_lock = threading.Lock()
_probe_cache: dict[str, tuple[bool, str]] = {}


def _real_python() -> str:
    return os.path.realpath(sys.executable)


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
        argv = [_real_python(), "-I", "-S", "-c", check]
        r, w = os.pipe()
        try:
            with tempfile.TemporaryDirectory(prefix="noa-probe-") as tmp:
                plan = _Plan.build(Path(tmp), ExecLimits(), _sandbox_env(None), (), ())
                launch, _ = _backend_argv(backend, argv, plan, w)
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


# --------------------------------------------------------------------------- plan


def _norm(p: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(p)))


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _drop_nested(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in sorted(set(paths), key=lambda s: (s.count("/"), s)):
        if not any(_is_within(p, q) for q in out):
            out.append(p)
    return out


@dataclass(frozen=True)
class _Plan:
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
    ) -> "_Plan":
        work = os.path.realpath(workdir)
        hide_candidates = [*DEFAULT_HIDE_PATHS, *(os.fspath(p) for p in hide_paths)]
        noa_home = os.environ.get("NOA_HOME")
        if noa_home:
            hide_candidates.append(noa_home)
        hide_dirs, hide_files = [], []
        for raw in hide_candidates:
            p = os.path.realpath(_norm(raw))
            if p == "/" or _is_within(p, SANDBOX_TMP) or _is_within(p, "/proc") or _is_within(p, "/dev"):
                continue  # already private in the sandbox, or not hideable
            if _is_within(p, work):
                continue  # the work dir is the sandbox's own
            try:
                st = os.stat(p)
            except OSError:
                continue
            (hide_dirs if stat.S_ISDIR(st.st_mode) else hide_files).append(p)
        hide_dirs = _drop_nested(hide_dirs)
        hide_files = [f for f in set(hide_files) if not any(_is_within(f, d) for d in hide_dirs)]

        # What the command needs to see even when it lies in a hidden place: the
        # interpreter NOA runs under (its venv and its base installation), the command's
        # own executable, and whatever the caller asked for.
        wanted = [os.path.realpath(_norm(p)) for p in readonly_paths]
        # NOA's own package too (read-only): the swarm loads its pytest plugin from it.
        implicit = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                    os.path.dirname(_real_python()), _NOA_PACKAGE_DIR}
        if argv0:
            exe = argv0 if os.sep in argv0 else shutil.which(argv0, path=env.get("PATH"))
            if exe:
                implicit.add(os.path.dirname(os.path.realpath(exe)))
        for p in implicit:
            rp = os.path.realpath(p)
            # re-expose what a hidden place or the private /tmp would otherwise cover
            # (a venv under /tmp, as in a CI checkout there)
            if _is_within(rp, SANDBOX_TMP) or any(_is_within(rp, h) for h in hide_dirs):
                wanted.append(rp)
        readonly = [p for p in dict.fromkeys(wanted) if os.path.exists(p)]
        return cls(work, tuple(sorted(hide_dirs)), tuple(sorted(hide_files)), tuple(readonly), dict(env), limits)


def _sandbox_env(extra: Mapping[str, str] | None) -> dict[str, str]:
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


# --------------------------------------------------------------------------- launch


# Runs inside the sandbox (bwrap backend) just before the command: says "ready" on the
# status pipe, closes it, then becomes the command. Without this "ready", a failed run is
# a sandbox setup failure, not the command's own failure.
_READY_SHIM = (
    "import os,sys\n"
    "fd=int(sys.argv[1])\n"
    "os.write(fd,b'noa-ready');os.close(fd)\n"
    "a=sys.argv[2:]\n"
    "try:\n"
    " os.execvp(a[0],a)\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'noa-sandbox: cannot run {a[0]!r}: {e.strerror}\\n');os._exit(127 if isinstance(e,FileNotFoundError) else 126)\n"
)

# Runs as pid 1 of fresh namespaces made by `unshare` (fallback backend). It makes the
# same mounts bwrap makes, forks the command with no capabilities, reaps, and exits with
# the command's status (128+signal when it was killed), which ends the pid namespace.
_UNSHARE_BOOTSTRAP = r'''
import ctypes, json, os, sys
cfg = json.loads(sys.argv[1]); argv = sys.argv[2:]
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC = 1, 2, 4, 8, 32, 4096, 16384
ST2MS = {1: 1, 2: 2, 4: 4, 8: 8, 1024: 1024, 2048: 2048, 4096: 1 << 21}
def fail(msg):
    sys.stderr.write("noa-isolation: " + msg + "\n"); sys.stderr.flush(); os._exit(125)
def b(s):
    return None if s is None else os.fsencode(s)
def mount(src, tgt, fstype, flags, data=None):
    if libc.mount(b(src), b(tgt), b(fstype), flags, b(data)) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e), tgt)
def flags_of(path):
    f = os.statvfs(path).f_flag; out = 0
    for st, ms in ST2MS.items():
        if f & st: out |= ms
    return out
def remount(path, ro, extra=NOSUID | NODEV):
    mount(None, path, None, (flags_of(path) & ~RDONLY) | REMOUNT | BIND | extra | (RDONLY if ro else 0))
def fdpath(fd):
    return "/proc/self/fd/%d" % fd
def placeholder(path, like_dir):
    if os.path.lexists(path): return
    if like_dir: os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True); open(path, "w").close()
def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1").decode()
try:
    O = os.O_PATH | os.O_CLOEXEC
    work = cfg["workdir"]; work_fd = os.open(work, O | os.O_DIRECTORY)
    ro_fds = [(p, os.open(p, O)) for p in cfg["readonly"]]
    devs = {n: os.open("/dev/" + n, O) for n in ("null", "zero", "full", "random", "urandom", "tty") if os.path.exists("/dev/" + n)}
    mps = []
    for line in open("/proc/self/mountinfo"):
        mps.append(unescape(line.split()[4]))
    failed = []
    for mp in sorted(set(mps), key=len):
        if mp in ("/proc", "/dev") or mp.startswith(("/proc/", "/dev/")): continue
        try: remount(mp, True)
        except OSError as e: failed.append((mp, e))
    for mp, e in failed:
        try:
            writable = not os.statvfs(mp).f_flag & 1
        except OSError:
            continue  # shadowed or gone: not reachable
        if writable: fail("cannot make %s read-only: %s" % (mp, e))
    if not os.statvfs("/").f_flag & 1: fail("/ is still writable")
    mount("tmpfs", "/tmp", "tmpfs", NOSUID | NODEV, "size=%d,mode=1777" % cfg["tmp_bytes"])
    os.makedirs(cfg["home"], mode=0o700, exist_ok=True)
    mount("tmpfs", "/dev", "tmpfs", NOSUID | NODEV, "size=1m,mode=755")
    for n, fd in devs.items():
        placeholder("/dev/" + n, False); mount(fdpath(fd), "/dev/" + n, None, BIND)
    for n, t in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(t, "/dev/" + n)
    os.mkdir("/dev/shm"); mount("tmpfs", "/dev/shm", "tmpfs", NOSUID | NODEV, "size=64m,mode=1777")
    for d in cfg["hide_dirs"]: mount("tmpfs", d, "tmpfs", NOSUID | NODEV, "size=1m,mode=755")
    for f in cfg["hide_files"]: mount(fdpath(devs["null"]), f, None, BIND)
    placeholder(work, True); mount(fdpath(work_fd), work, None, BIND | REC); remount(work, False)
    for p, fd in ro_fds:
        placeholder(p, os.path.isdir(fdpath(fd))); mount(fdpath(fd), p, None, BIND | REC); remount(p, True)
    for d in cfg["hide_dirs"]: remount(d, True)
    for fd in [work_fd, *devs.values(), *(fd for _, fd in ro_fds)]: os.close(fd)
except OSError as e:
    fail("mount setup: %s" % e)
status_fd = cfg["status_fd"]
os.write(status_fd, b"noa-ready"); os.close(status_fd)
pid = os.fork()
if pid == 0:
    try:
        os.setsid(); os.chdir(work)
        cap = 0
        while libc.prctl(24, cap, 0, 0, 0) == 0: cap += 1  # PR_CAPBSET_DROP every capability
        libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
        class H(ctypes.Structure): _fields_ = [("v", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class D(ctypes.Structure): _fields_ = [("e", ctypes.c_uint32), ("p", ctypes.c_uint32), ("i", ctypes.c_uint32)]
        if libc.capset(ctypes.byref(H(0x20080522, 0)), (D * 2)()) != 0: raise OSError(ctypes.get_errno(), "capset")
        if libc.prctl(38, 1, 0, 0, 0) != 0: raise OSError(ctypes.get_errno(), "no_new_privs")
    except OSError as e:
        sys.stderr.write("noa-isolation: dropping privileges: %s\n" % e); os._exit(125)
    try:
        os.execvpe(argv[0], argv, cfg["env"])
    except OSError as e:
        sys.stderr.write("noa-sandbox: cannot run %r: %s\n" % (argv[0], e.strerror))
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)
while True:
    try: p, st = os.wait()
    except ChildProcessError: os._exit(125)
    if p == pid:
        code = os.waitstatus_to_exitcode(st)
        os._exit(128 - code if code < 0 else code)
'''


def _backend_argv(backend: Backend, argv: Sequence[str], plan: _Plan, status_fd: int) -> tuple[list[str], str]:
    lim = plan.limits
    if backend == "bwrap":
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
        a += ["--", _real_python(), "-I", "-S", "-c", _READY_SHIM, str(status_fd), *argv]
        return a, "bwrap"
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    a = [unshare, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
         "--mount-proc", "--ipc", "--uts", "--propagation", "private"]
    if not lim.network:
        a.append("--net")
    cfg = {
        "workdir": plan.workdir, "readonly": list(plan.readonly), "hide_dirs": list(plan.hide_dirs),
        "hide_files": list(plan.hide_files), "env": plan.env, "tmp_bytes": int(lim.tmp_bytes),
        "home": SANDBOX_HOME, "status_fd": status_fd,
    }
    a += ["--", _real_python(), "-I", "-S", "-c", _UNSHARE_BOOTSTRAP, json.dumps(cfg), *argv]
    return a, "unshare"


class _PidsCgroup:
    """A cgroup-v1 ``pids`` group for one run: caps the process count (RLIMIT_NPROC does
    not bind uid 0, which every sandbox here maps to) and lets us kill every member."""

    ROOT = Path("/sys/fs/cgroup/pids")

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def available(cls) -> bool:
        return (cls.ROOT / "cgroup.procs").exists() and os.access(cls.ROOT, os.W_OK)

    @classmethod
    def create(cls, max_pids: int) -> "_PidsCgroup | None":
        if not cls.available():
            return None
        path = cls.ROOT / "noa" / f"run-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        try:
            path.mkdir(parents=True)
            (path / "pids.max").write_text(f"{int(max_pids)}\n")
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return cls(path)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _limits_prefix(lim: ExecLimits, set_nproc: bool) -> tuple[list[str], list[str]]:
    cpu = max(1, int(lim.cpu_seconds))
    rl = {
        "cpu": (cpu, cpu + 5),  # soft -> SIGXCPU, hard -> SIGKILL
        "as": (int(lim.memory_bytes),) * 2,
        "fsize": (int(lim.file_size_bytes),) * 2,
        "core": (0, 0),
    }
    if set_nproc:
        rl["nproc"] = (int(lim.max_processes),) * 2
    prlimit = shutil.which("prlimit")
    if prlimit:
        return [prlimit, *(f"--{k}={s}:{h}" for k, (s, h) in rl.items()), "--"], list(rl)
    shim = (
        "import json,os,resource,sys\n"
        "R={'cpu':resource.RLIMIT_CPU,'as':resource.RLIMIT_AS,'fsize':resource.RLIMIT_FSIZE,"
        "'core':resource.RLIMIT_CORE,'nproc':resource.RLIMIT_NPROC}\n"
        "for k,v in json.loads(sys.argv[1]).items(): resource.setrlimit(R[k],tuple(v))\n"
        "os.execv(sys.argv[2],sys.argv[2:])\n"
    )
    return [_real_python(), "-I", "-S", "-c", shim, json.dumps(rl)], list(rl)


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


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: _PidsCgroup | None) -> None:
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
    for precious in ("/", sys.prefix, sys.base_prefix, os.path.dirname(_real_python())):
        if _is_within(os.path.realpath(precious), real_work):
            raise IsolationError(f"work dir {workdir} would make {precious} writable to the sandbox")
    chosen: Backend = backend or isolation_backend()
    if chosen == DOCKER_BACKEND:
        from noa_core.isolation_docker import run_in_container

        return run_in_container(argv, workdir, limits, env=_sandbox_env(env), readonly_paths=readonly_paths,
                                stdout_path=stdout_path, merge_stderr=merge_stderr)
    if backend is not None:
        ok, why = _probe(backend)
        if not ok:
            raise IsolationUnavailable(f"isolation backend {backend} does not work here: {why}")

    sandbox_env = _sandbox_env(env)
    plan = _Plan.build(workdir, limits, sandbox_env, readonly_paths, hide_paths, argv0=argv[0])
    cgroup = _PidsCgroup.create(limits.max_processes)
    applied: list[str] = []
    tail_chars = int(limits.output_tail_chars)

    with tempfile.TemporaryDirectory(prefix="noa-exec-") as scratch:
        out_path = Path(stdout_path) if stdout_path is not None else Path(scratch) / "stdout"
        err_path = Path(scratch) / "stderr"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        status_r, status_w = os.pipe()
        try:
            launch, _ = _backend_argv(chosen, argv, plan, status_w)
            prefix, applied = _limits_prefix(limits, set_nproc=cgroup is None and os.geteuid() != 0)
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


# --------------------------------------------------------------------------- work copies


def _copy_regular_only(src: str, dst: str) -> str:
    """copytree's copy function: regular files only; devices, fifos and sockets are skipped
    (reading a device node from a drop would read the host's device)."""
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


def make_work_copy(src: Path, dest_parent: Path) -> Path:
    """Copy ``src`` into a new directory under ``dest_parent`` and return it.

    Symlinks are copied as symlinks (never followed), special files are left out, modes
    and times are kept. Each call makes a fresh directory.
    """
    src = Path(src)
    if src.is_symlink() or not src.is_dir():
        raise IsolationError(f"cannot copy {src}: not a directory")
    dest_parent = Path(dest_parent)
    dest_parent.mkdir(parents=True, exist_ok=True)
    dest = dest_parent / f"{src.name or 'tree'}-{uuid.uuid4().hex[:10]}"
    shutil.copytree(src, dest, symlinks=True, copy_function=_copy_regular_only)
    return dest
