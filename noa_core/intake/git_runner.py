"""Running git on a received repository's clone, hardened: a clean environment, ``-c`` options that turn
off every way the repository could run code, a clone bounded in time and size.

See :mod:`noa_core.intake.git` for what is run and why. :class:`HardenedGit` runs git in NOA's own
work directory; :func:`classify_clone_failure` turns a failed clone's stderr into a network error
(retry), a refusal of hostile content, or bad input.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput, LimitExceeded, NoaError
from noa_core.intake.errors import NetworkError
from noa_core.intake.guards import quote

GIT_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.symlinks=false",
    "core.protectNTFS=true",
    "core.protectHFS=true",
    "core.sshCommand=false",
    "core.pager=cat",
    "credential.helper=",
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.file.allow=always",
    "protocol.http.allow=never",
    "protocol.ext.allow=never",
    "protocol.ssh.allow=never",
    "protocol.git.allow=never",
    "submodule.recurse=false",
    "transfer.fsckObjects=true",
    "fetch.fsckObjects=true",
    "fetch.fsck.zeroPaddedFilemode=ignore",
    "fetch.fsck.badTimezone=ignore",
    "gc.auto=0",
    "maintenance.auto=false",
)

_PASS_ENV = (
    "PATH", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
    "all_proxy", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
    "CURL_CA_BUNDLE",
)

_NETWORK_HINTS = (
    "could not resolve host", "failed to connect", "connection timed out", "operation timed out",
    "connection refused", "connection reset", "early eof", "rpc failed", "the remote end hung up",
    "returned error: 5", "returned error: 429", "ssl", "gnutls", "tls", "network is unreachable",
    "temporary failure",
)
_FSCK_HINTS = ("fsck", "gitmodules", "dotgit", "hasdot", "badtree", "disallowed submodule")
_TAIL_SKIP = ("hint:", "fatal: the remote end hung up", "fatal: early eof", "fatal: index-pack failed")

class HardenedGit:
    """Runs git in NOA's own work directory with the hardened environment."""

    def __init__(self, work: Path, limits: IngestLimits, source: str) -> None:
        self.work = work
        self.limits = limits
        self.source = source
        self.home = work / "home"
        self.tmp = work / "tmp"
        self.templates = work / "templates"
        for d in (self.home, self.tmp, self.templates):
            d.mkdir(mode=0o700)
        self.clone_dir = work / "clone.git"
        git = shutil.which("git")
        if git is None:
            raise NoaError("git is not installed; it is needed to receive git sources")
        self.git = git
        self.env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        self.env.setdefault("PATH", os.defpath)
        self.env.update({
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "TMPDIR": str(self.tmp),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_TEMPLATE_DIR": str(self.templates),
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_OPTIONAL_LOCKS": "0",
        })

    def argv(self, *args: str, in_clone: bool = True) -> list[str]:
        cmd = [self.git]
        if in_clone:
            cmd.append(f"--git-dir={self.clone_dir}")
        for opt in GIT_CONFIG:
            cmd += ["-c", opt]
        return cmd + list(args)

    def popen(self, *args: str, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
              stderr: Any = subprocess.PIPE, in_clone: bool = True) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*args, in_clone=in_clone), stdin=stdin, stdout=stdout,
                                stderr=stderr, env=self.env, cwd=self.tmp, start_new_session=True)

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[bytes]:
        proc = self.popen(*args)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise NoaError(f"git {args[0]} in NOA's clone of {quote(self.source)} timed out") from None
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise NoaError(f"git {args[0]} in NOA's clone of {quote(self.source)} failed: {stderr_tail(err)}")
        return result

    # -- clone -------------------------------------------------------------------------
    def clone(self, location: str, remote: bool) -> None:
        err_path = self.work / "clone.stderr"
        with open(err_path, "wb") as err:
            proc = self.popen("clone", "--bare", "--no-local", "--no-recurse-submodules", "--quiet",
                              f"--template={self.templates}", "--", location, str(self.clone_dir),
                              stdout=subprocess.DEVNULL, stderr=err, in_clone=False)
            deadline = time.monotonic() + self.limits.fetch_timeout_s
            try:
                while True:
                    try:
                        proc.wait(timeout=0.25)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if time.monotonic() > deadline:
                        kill_group(proc)
                        msg = (f"git clone of {quote(self.source)} took longer than fetch_timeout_s "
                               f"{self.limits.fetch_timeout_s:g}")
                        raise NetworkError(msg) if remote else LimitExceeded(msg)
                    if disk_usage(self.clone_dir) > self.limits.max_repo_bytes:
                        kill_group(proc)
                        raise LimitExceeded(f"refused git source {quote(self.source)}: clone is larger than "
                                            f"max_repo_bytes {self.limits.max_repo_bytes}")
            except BaseException:
                if proc.poll() is None:
                    kill_group(proc)
                raise
        if disk_usage(self.clone_dir) > self.limits.max_repo_bytes:
            raise LimitExceeded(f"refused git source {quote(self.source)}: clone is larger than "
                                f"max_repo_bytes {self.limits.max_repo_bytes}")
        if proc.returncode != 0:
            raise classify_clone_failure(self.source, err_path.read_bytes(), remote)

    # -- inspection --------------------------------------------------------------------
    def head(self) -> str:
        res = self.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        if res.returncode != 0:
            raise BadInput(f"refused git source {quote(self.source)}: repository has no commit at HEAD")
        return res.stdout.decode("ascii").strip()

    def ls_tree(self, head: str) -> Iterator[tuple[str, str, str, str, str]]:
        """Yield (mode, type, oid, size, path) for every entry of HEAD's tree, streaming."""
        proc = self.popen("ls-tree", "-r", "-l", "-z", "--full-tree", head)
        assert proc.stdout is not None
        try:
            buf = b""
            while True:
                chunk = proc.stdout.read(65536)
                if not chunk:
                    break
                buf += chunk
                *records, buf = buf.split(b"\0")
                for rec in records:
                    yield parse_ls_tree(rec)
            if buf:
                yield parse_ls_tree(buf)
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise NoaError(f"git ls-tree in NOA's clone of {quote(self.source)} failed: {stderr_tail(err)}")
        finally:
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def parse_ls_tree(rec: bytes) -> tuple[str, str, str, str, str]:
    meta, sep, path = rec.partition(b"\t")
    fields = meta.split()
    if not sep or len(fields) != 4:
        raise NoaError(f"unexpected git ls-tree output {quote(rec[:120])}")
    mode, otype, oid, size = (f.decode("ascii") for f in fields)
    return mode, otype, oid, size, path.decode("utf-8", "surrogateescape")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def disk_usage(path: Path) -> int:
    total = 0
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def stderr_tail(err: bytes) -> str:
    lines = [" ".join(line.split()) for line in err.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    useful = [line for line in lines if not line.lower().startswith(_TAIL_SKIP)]
    pick = (useful or lines or ["no message"])
    text = pick[0] if any(h in pick[0].lower() for h in _FSCK_HINTS) else pick[-1]
    return text[:300]


def classify_clone_failure(source: str, err: bytes, remote: bool) -> NoaError:
    low = err.decode("utf-8", "replace").lower()
    detail = stderr_tail(err)
    if any(h in low for h in _FSCK_HINTS) and ("error" in low or "fatal" in low):
        return HostileInput(f"refused git source {quote(source)}: git fsck rejected an object ({detail})")
    if "transport" in low and "not allowed" in low:
        return HostileInput(f"refused git source {quote(source)}: transport not allowed ({detail})")
    permanent = ("not found", "does not appear to be a git repository", "does not exist",
                 "returned error: 4", "authentication failed", "could not read username",
                 "terminal prompts disabled", "not a git repository", "repository not found")
    if remote and not any(p in low for p in permanent) and (
            any(h in low for h in _NETWORK_HINTS) or not low.strip()):
        return NetworkError(f"git clone of {quote(source)} failed: {detail}")
    return BadInput(f"git clone of {quote(source)} failed: {detail}")
