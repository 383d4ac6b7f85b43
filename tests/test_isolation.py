"""noa_core.isolation: untrusted commands get no network, no writes outside their work
copy, no secrets from our environment, and CPU / memory / time / process limits.

Every behavioural test runs on each backend that works on this host (bubblewrap and the
``unshare`` fallback); a backend that does not work here is skipped, never faked.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from noa_core import isolation
from noa_core.isolation import backend as isolation_backends
from noa_core.isolation.limits import PidsCgroup
from noa_core.config import ExecLimits
from noa_core.isolation import (
    ExecResult,
    IsolationError,
    IsolationUnavailable,
    isolation_backend,
    make_work_copy,
    run_isolated,
)

PY = sys.executable


@pytest.fixture(params=["bwrap", "unshare"])
def backend(request: pytest.FixtureRequest) -> str:
    ok, why = isolation_backends._probe(request.param)
    if not ok:
        pytest.skip(f"{request.param} does not work on this host: {why}")
    return request.param


@pytest.fixture
def limits() -> ExecLimits:
    return ExecLimits(cpu_seconds=60, memory_bytes=2 * 1024**3, wall_seconds=60)


@pytest.fixture
def host_dir() -> Path:
    """A directory outside /tmp (the sandbox gets its own /tmp, which would hide a path
    under pytest's tmp_path for a reason other than the one a test means to show)."""
    base = Path("/var/tmp")
    if not base.is_dir():
        pytest.skip("no /var/tmp")
    d = Path(tempfile.mkdtemp(prefix="noa-test-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("original\n")
    return make_work_copy(src, tmp_path / "work")


def _py(code: str) -> list[str]:
    return [PY, "-c", code]


# ------------------------------------------------------------------------ backend choice


def test_backend_is_reported_and_prefers_bwrap() -> None:
    name = isolation_backend()
    assert name in ("bwrap", "unshare")
    if isolation_backends._probe("bwrap")[0]:
        assert name == "bwrap"


def test_no_backend_means_refusal_not_unisolated_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(isolation_backends, "_probe", lambda backend: (False, "missing on purpose"))
    marker = tmp_path / "ran"
    with pytest.raises(IsolationUnavailable, match="bubblewrap"):
        run_isolated(["touch", str(marker)], tmp_path, ExecLimits())
    assert not marker.exists()


def test_forced_backend_must_be_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(isolation.BACKEND_ENV, "chroot")
    with pytest.raises(IsolationUnavailable):
        isolation_backend()


def test_forced_backend_is_used(monkeypatch: pytest.MonkeyPatch, backend: str, work: Path, limits: ExecLimits) -> None:
    monkeypatch.setenv(isolation.BACKEND_ENV, backend)
    res = run_isolated(["true"], work, limits)
    assert res.isolation == backend and res.returncode == 0


# ------------------------------------------------------------------------------ network


@pytest.fixture
def tcp_server():
    """A TCP server on 127.0.0.1 that answers b"hello" to whoever connects."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"hello")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=3)\n"
    "    print('connected', s.recv(5).decode())\n"
    "except OSError as e:\n"
    "    print('blocked', type(e).__name__, e.errno)\n"
)


def test_no_network(backend: str, work: Path, limits: ExecLimits, tcp_server: int) -> None:
    outside = subprocess.run([PY, "-c", CONNECT, str(tcp_server)], capture_output=True, text=True, timeout=30)
    assert outside.stdout.strip() == "connected hello"

    res = run_isolated([PY, "-c", CONNECT, str(tcp_server)], work, limits, backend=backend)
    assert res.returncode == 0, res.stderr
    word, _kind, errno_ = res.stdout.split()
    assert word == "blocked", res.stdout
    # refused (bwrap: a loopback of its own with nothing listening) or unreachable
    # (unshare: its loopback is down)
    assert int(errno_) in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EADDRNOTAVAIL), res.stdout


def test_network_flag_shares_the_host_network(backend: str, work: Path, tcp_server: int) -> None:
    lim = ExecLimits(wall_seconds=60, network=True)
    res = run_isolated([PY, "-c", CONNECT, str(tcp_server)], work, lim, backend=backend)
    assert res.stdout.strip() == "connected hello", res.stdout + res.stderr


def test_no_view_of_host_processes(backend: str, work: Path, limits: ExecLimits) -> None:
    res = run_isolated(_py("import os;print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"),
                       work, limits, backend=backend)
    pids = eval(res.stdout)  # a list of small ints printed by our own code
    assert len(pids) <= 3 and max(pids) <= 3, pids


# --------------------------------------------------------------------------- file system


def test_writes_stay_in_the_work_copy(backend: str, host_dir: Path, tmp_path: Path, limits: ExecLimits) -> None:
    src = host_dir / "src"
    src.mkdir()
    (src / "data.txt").write_text("original\n")
    work = make_work_copy(src, host_dir / "work")
    outside = host_dir / "outside.txt"
    tmp_outside = tmp_path / "outside.txt"
    host_tmp = Path("/tmp") / f"noa-iso-{uuid.uuid4().hex}"
    code = (
        "import sys\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        open(p,'w').write('pwned')\n"
        "        print('wrote', p)\n"
        "    except OSError as e:\n"
        "        print('refused', p, e.strerror)\n"
    )
    targets = [work / "data.txt", work / "new.txt", outside, src / "data.txt", src / "new.txt", host_tmp, tmp_outside,
               Path("/etc") / f"noa-{uuid.uuid4().hex}", Path.cwd() / f"noa-{uuid.uuid4().hex}"]
    res = run_isolated([PY, "-c", code, *map(str, targets)], work, limits, backend=backend)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"wrote {work / 'data.txt'}"
    assert lines[1] == f"wrote {work / 'new.txt'}"
    # Outside the work copy: refused (read-only) or written to a private tmpfs that vanished.
    assert (work / "data.txt").read_text() == "pwned"
    assert not outside.exists()
    assert (src / "data.txt").read_text() == "original\n"
    assert not (src / "new.txt").exists()
    assert not host_tmp.exists()
    for t in targets[2:]:
        assert not t.exists() or t == src / "data.txt"
    assert f"refused {src / 'data.txt'} Read-only file system" in lines
    assert f"refused {outside} Read-only file system" in lines


def test_hidden_paths_and_secrets_on_disk(backend: str, host_dir: Path, work: Path, limits: ExecLimits,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret_dir = host_dir / "secrets"
    secret_dir.mkdir()
    (secret_dir / "token").write_text("s3cr3t")
    noa_home = host_dir / "noa-home"
    (noa_home / "drops").mkdir(parents=True)
    (noa_home / "registry.db").write_text("db")
    monkeypatch.setenv("NOA_HOME", str(noa_home))
    code = (
        "import os,sys\n"
        "for p in sys.argv[1:]:\n"
        "    print(p, sorted(os.listdir(p)) if os.path.isdir(p) else 'missing')\n"
        "try:\n"
        "    print('shadow', len(open('/etc/shadow','rb').read()))\n"
        "except OSError:\n"
        "    print('shadow unreadable')\n"
    )
    res = run_isolated([PY, "-c", code, str(secret_dir), str(noa_home), "/root", "/run"], work, limits,
                       hide_paths=[secret_dir], backend=backend)
    assert res.returncode == 0, res.stderr
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert sorted(os.listdir(secret_dir)) == ["token"]  # still there on the host
    assert out[str(secret_dir)] == "[]"
    assert out[str(noa_home)] == "[]"
    if Path("/root").is_dir():
        # Only what the interpreter needs is re-exposed (e.g. /root/.pyenv for a pyenv Python).
        needed = {Path(p).parts[2] for p in (sys.base_prefix, os.path.realpath(sys.executable))
                  if Path(p).parts[1:2] == ("root",) and len(Path(p).parts) > 2}
        assert set(eval(out["/root"])) <= needed
    assert out["/run"] in ("[]", "missing")
    assert out["shadow"] in ("0", "unreadable")


def test_work_dir_inside_hidden_noa_home_is_still_visible(backend: str, host_dir: Path, limits: ExecLimits,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    noa_home = host_dir / "noa-home"
    (noa_home / "drops").mkdir(parents=True)
    monkeypatch.setenv("NOA_HOME", str(noa_home))
    src = host_dir / "src"
    src.mkdir()
    (src / "f.txt").write_text("x")
    work = make_work_copy(src, noa_home / "sandboxes")
    res = run_isolated(_py("import os;print(sorted(os.listdir('.')), sorted(os.listdir(os.environ['H'])))"),
                       work, limits, env={"H": str(noa_home)}, backend=backend)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['f.txt'] ['sandboxes']"


def test_readonly_paths_are_visible_but_not_writable(backend: str, host_dir: Path, work: Path,
                                                     limits: ExecLimits) -> None:
    hidden = host_dir / "hidden"
    keep = hidden / "tools"
    keep.mkdir(parents=True)
    (keep / "tool.txt").write_text("tool")
    (hidden / "other.txt").write_text("nope")
    fixed = work / "fixed.txt"
    fixed.write_text("fixed")
    code = (
        "import os,sys\n"
        "print(open(sys.argv[1]).read(), sorted(os.listdir(sys.argv[2])))\n"
        "for p in (sys.argv[1], sys.argv[3]):\n"
        "    try:\n"
        "        open(p,'a').write('x'); print('wrote')\n"
        "    except OSError as e:\n"
        "        print('refused', e.strerror)\n"
    )
    res = run_isolated([PY, "-c", code, str(keep / "tool.txt"), str(hidden), str(fixed)], work, limits,
                       hide_paths=[hidden], readonly_paths=[keep, fixed], backend=backend)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "tool ['tools']"
    assert lines[1].startswith("refused") and lines[2].startswith("refused")
    assert fixed.read_text() == "fixed"


# ------------------------------------------------------------------------------ environment


def test_env_is_minimal_and_has_no_parent_secrets(backend: str, work: Path, limits: ExecLimits,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOA_TEST_SECRET_TOKEN", "hunter2-" + uuid.uuid4().hex)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    res = run_isolated(_py("import os,json;print(json.dumps(dict(os.environ)))"), work, limits,
                       env={"EXTRA": "given"}, backend=backend)
    import json

    env = json.loads(res.stdout)
    assert "NOA_TEST_SECRET_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert os.environ["NOA_TEST_SECRET_TOKEN"] not in res.stdout
    assert env["EXTRA"] == "given"
    assert env["HOME"] == isolation.SANDBOX_HOME
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert set(env) <= {"PATH", "LANG", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "EXTRA", "PWD", "LC_CTYPE"}


def test_home_is_private_and_writable(backend: str, work: Path, limits: ExecLimits) -> None:
    res = run_isolated(["sh", "-c", 'echo hi > "$HOME/x" && cat "$HOME/x" && touch /tmp/y && echo ok'],
                       work, limits, backend=backend)
    assert res.stdout.split() == ["hi", "ok"], res.stderr


def test_no_capabilities_and_no_privilege_regain(backend: str, work: Path, limits: ExecLimits) -> None:
    res = run_isolated(["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; mount -o remount,rw / 2>&1 || "
                        "echo remount-refused"], work, limits, backend=backend)
    caps = [line.split()[1] for line in res.stdout.splitlines() if line.startswith("Cap")]
    assert caps and all(int(c, 16) == 0 for c in caps), res.stdout
    assert "remount-refused" in res.stdout


# ----------------------------------------------------------------------------------- limits


def test_cpu_spin_is_killed_by_cpu_limit(backend: str, work: Path) -> None:
    lim = ExecLimits(cpu_seconds=1, wall_seconds=60)
    res = run_isolated(_py("while True: pass"), work, lim, backend=backend)
    assert not res.timed_out
    assert res.killed_by in ("SIGXCPU", "SIGKILL")
    assert res.returncode == 128 + (24 if res.killed_by == "SIGXCPU" else 9)
    assert res.seconds < 30


def test_wall_clock_timeout_kills_everything(backend: str, work: Path) -> None:
    lim = ExecLimits(cpu_seconds=100, wall_seconds=1.5)
    start = time.monotonic()
    res = run_isolated(["sh", "-c", "sleep 60 & sleep 60; echo never"], work, lim, backend=backend)
    assert res.timed_out and res.killed_by == "SIGKILL"
    assert "never" not in res.stdout
    assert time.monotonic() - start < 20


def test_memory_hog_fails(backend: str, work: Path) -> None:
    lim = ExecLimits(memory_bytes=256 * 1024**2, wall_seconds=60)
    res = run_isolated(_py("b = bytearray(1024**3); print('allocated')"), work, lim, backend=backend)
    assert res.returncode != 0
    assert "allocated" not in res.stdout
    assert "MemoryError" in res.stderr


def test_file_size_limit(backend: str, work: Path) -> None:
    lim = ExecLimits(file_size_bytes=1024 * 1024, wall_seconds=60)
    res = run_isolated(["sh", "-c", "head -c 4000000 /dev/zero > big.bin"], work, lim, backend=backend)
    assert res.returncode != 0
    assert (work / "big.bin").stat().st_size <= 1024 * 1024


def test_process_limit(backend: str, work: Path) -> None:
    if not PidsCgroup.available() and os.geteuid() == 0:
        pytest.skip("no pids cgroup here and RLIMIT_NPROC does not bind root")
    lim = ExecLimits(max_processes=20, wall_seconds=60)
    code = (
        "import subprocess\n"
        "started, refused = [], 0\n"
        "for i in range(60):\n"
        "    try:\n"
        "        started.append(subprocess.Popen(['sleep', '30']))\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "print(len(started), refused)\n"
    )
    res = run_isolated([PY, "-c", code], work, lim, backend=backend)
    assert res.returncode == 0, res.stderr
    started, refused = map(int, res.stdout.split())
    assert started < 20 and refused == 60 - started
    assert res.seconds < 20  # the sleeps died with the sandbox


def _find_pids(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if token.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_background_child_is_killed_at_the_end(backend: str, work: Path, limits: ExecLimits) -> None:
    token = f"noa-orphan-{uuid.uuid4().hex}"
    # The command starts a detached grandchild (new session, double fork) that would
    # outlive it, waits until it runs, then exits.
    code = (
        "import os,subprocess,sys,time\n"
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(300)',sys.argv[1]],"
        "start_new_session=True,stdin=subprocess.DEVNULL,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\n"
        "time.sleep(1.5)\n"
        "print('parent exits')\n"
    )
    seen: list[int] = []
    result: list[ExecResult] = []
    t = threading.Thread(target=lambda: result.append(run_isolated([PY, "-c", code, token], work, limits,
                                                                   backend=backend)))
    t.start()
    deadline = time.monotonic() + 20
    while t.is_alive() and not seen and time.monotonic() < deadline:
        seen = _find_pids(token)
        time.sleep(0.05)
    t.join(60)
    assert result and result[0].stdout.strip() == "parent exits"
    assert seen, "the grandchild was never seen running on the host"
    time.sleep(0.2)
    for pid in seen:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                alive = token.encode() in fh.read()
        except OSError:
            alive = False
        assert not alive, f"pid {pid} outlived the isolated command"
    assert _find_pids(token) == []


def test_missing_command_is_the_commands_failure(backend: str, work: Path, limits: ExecLimits) -> None:
    res = run_isolated(["noa-no-such-command-xyz"], work, limits, backend=backend)
    assert res.returncode == 127
    assert "noa-no-such-command-xyz" in res.stderr


def test_output_to_file_and_tail(backend: str, work: Path, tmp_path: Path) -> None:
    lim = ExecLimits(output_tail_chars=100, wall_seconds=60)
    log = tmp_path / "logs" / "run.log"
    res = run_isolated(_py("import sys\nfor i in range(2000): print(i)\nsys.stdout.flush()\nprint('err', file=sys.stderr)"),
                       work, lim, stdout_path=log, merge_stderr=True, backend=backend)
    text = log.read_text()
    assert text.startswith("0\n1\n") and "1999\n" in text and "err" in text
    assert len(res.stdout) <= 100 and res.stdout.endswith("err\n")
    assert res.stderr == ""


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(IsolationError):
        run_isolated([], tmp_path, ExecLimits())
    with pytest.raises(IsolationError):
        run_isolated(["true"], tmp_path / "missing", ExecLimits())
    for precious in (Path("/"), Path(sys.prefix), Path(sys.base_prefix).parent):
        with pytest.raises(IsolationError, match="writable"):
            run_isolated(["true"], precious, ExecLimits())


# ------------------------------------------------------------------------------ work copies


def test_make_work_copy_keeps_symlinks_and_skips_special_files(tmp_path: Path) -> None:
    src = tmp_path / "drop"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "escape").symlink_to("/etc/passwd")
    (src / "loop").symlink_to("loop")
    os.mkfifo(src / "fifo")
    dest = make_work_copy(src, tmp_path / "copies")
    assert dest.parent == tmp_path / "copies" and dest.name.startswith("drop-")
    assert (dest / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert os.readlink(dest / "escape") == "/etc/passwd" and (dest / "escape").is_symlink()
    assert os.readlink(dest / "loop") == "loop"
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert not (dest / "fifo").exists()
    again = make_work_copy(src, tmp_path / "copies")
    assert again != dest


def test_make_work_copy_refuses_non_directories(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(IsolationError):
        make_work_copy(tmp_path / "f", tmp_path / "c")
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(IsolationError):
        make_work_copy(tmp_path / "link", tmp_path / "c")
