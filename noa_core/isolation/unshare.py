"""The fallback backend: util-linux ``unshare`` plus a small bootstrap that does bubblewrap's mounts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence

from noa_core.isolation.policy import SANDBOX_HOME, Plan, real_python

# Runs as pid 1 of fresh namespaces made by `unshare` (fallback backend). It makes the
# same mounts bwrap makes, forks the command with no capabilities, reaps, and exits with
# the command's status (128+signal when it was killed), which ends the pid namespace.
UNSHARE_BOOTSTRAP = r'''
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


def unshare_argv(argv: Sequence[str], plan: Plan, status_fd: int) -> list[str]:
    """The ``unshare`` command line that runs ``argv`` under ``plan``, saying "ready" on ``status_fd``."""
    lim = plan.limits
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
    a += ["--", real_python(), "-I", "-S", "-c", UNSHARE_BOOTSTRAP, json.dumps(cfg), *argv]
    return a
