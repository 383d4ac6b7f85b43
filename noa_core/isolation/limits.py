"""Resource limits of a sandboxed run: rlimits (``prlimit`` or a ``setrlimit`` shim) and a pids cgroup."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.isolation.policy import real_python


class PidsCgroup:
    """A cgroup-v1 ``pids`` group for one run: caps the process count (RLIMIT_NPROC does
    not bind uid 0, which every sandbox here maps to) and lets us kill every member."""

    ROOT = Path("/sys/fs/cgroup/pids")

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def available(cls) -> bool:
        return (cls.ROOT / "cgroup.procs").exists() and os.access(cls.ROOT, os.W_OK)

    @classmethod
    def create(cls, max_pids: int) -> "PidsCgroup | None":
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


def limits_prefix(lim: ExecLimits, set_nproc: bool) -> tuple[list[str], list[str]]:
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
    return [real_python(), "-I", "-S", "-c", shim, json.dumps(rl)], list(rl)
