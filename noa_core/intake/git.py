"""Receiving a git repository without ever running git inside it.

The received repository is only ever read by ``git clone --bare --no-local``: that
runs ``git-upload-pack`` over it, which reads objects and refs and executes nothing
from the repository (no hooks, fsmonitor, filters or submodules).  Everything else
runs in NOA's own bare clone, with:

* a clean environment: ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``,
  ``HOME``/``XDG_CONFIG_HOME``/``TMPDIR`` inside the work directory, no prompts,
  ``GIT_PROTOCOL_FROM_USER=0``, an empty template directory, replace refs ignored;
* ``-c`` options: hooks path ``/dev/null``, fsmonitor off, symlinks off, submodules
  off, ``transfer.fsckObjects``, and a protocol allow-list of ``https`` and ``file``
  only (``ext``, ``ssh``, ``git`` and ``http`` never).

Before anything is materialised, ``git ls-tree -r -l -z HEAD`` is checked: symlinks
(mode 120000) and gitlinks/submodules (160000) are refused, names go through
:func:`~noa_core.intake.guards.clean_relpath`, and blob sizes, file count and total
size are checked against the limits.  Files are then written from
``git cat-file --batch`` (raw blobs: no checkout, no attributes, no filters).

What is fetched is the commit at the source's HEAD: for a local work tree, uncommitted
and untracked changes are not part of the drop.  https and ``file://`` clones are full
clones, so ``root_commits`` are the real roots;
if the source itself is shallow, ``meta["shallow"]`` is True and ``root_commits`` is
empty because the real roots are unknown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from noa_core.config import IngestLimits
from noa_core.intake.repo_config import refuse_code_carrying_repo
from noa_core.errors import BadInput, HostileInput, LimitExceeded, NoaError
from noa_core.intake.errors import NetworkError
from noa_core.intake.guards import SafeTree, quote

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

_MODE_FILE = "100644"
_MODE_EXEC = "100755"
_LEGACY_FILE_MODES = {"100664", "100600", "100640", "100660", "100444", "100000"}


@dataclass(frozen=True)
class GitResult:
    head_commit: str
    root_commits: tuple[str, ...]
    meta: dict[str, Any]


def is_git_dir(path: Path) -> bool:
    """True for a work tree with ``.git`` (dir, file or link) or a bare repository."""
    if os.path.lexists(path / ".git"):
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def repo_name_hint(value: str) -> str:
    """``https://host/org/name.git`` -> ``name``; ``/x/name/.git`` -> ``name``."""
    path = urlsplit(value).path if "://" in value else value
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    while parts and parts[-1] == ".git":
        parts.pop()
    name = parts[-1] if parts else "repo"
    if name.endswith(".git"):
        name = name[:-4]
    return name or "repo"


def check_git_location(value: str) -> str:
    """Return the clone argument for ``value``; refuses every transport but https/file/local."""
    if "\n" in value or "\x00" in value or "\r" in value:
        raise BadInput(f"refused git source {quote(value)}: control character in location")
    low = value.lower()
    if low.startswith("https://"):
        parts = urlsplit(value)
        if not parts.hostname:
            raise BadInput(f"refused git source {quote(value)}: URL has no host")
        if parts.username or parts.password:
            raise BadInput(f"refused git source {quote(value)}: credentials in URLs are not accepted")
        return value
    if low.startswith("file://"):
        return value
    if "://" in value or "::" in value:
        raise BadInput(f"refused git source {quote(value)}: only https://, file:// and local paths are accepted")
    if not os.path.isabs(value):
        raise BadInput(f"refused git source {quote(value)}: local repositories need an absolute path")
    return value


class _Git:
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
            _kill_group(proc)
            raise NoaError(f"git {args[0]} in NOA's clone of {quote(self.source)} timed out") from None
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise NoaError(f"git {args[0]} in NOA's clone of {quote(self.source)} failed: {_tail(err)}")
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
                        _kill_group(proc)
                        msg = (f"git clone of {quote(self.source)} took longer than fetch_timeout_s "
                               f"{self.limits.fetch_timeout_s:g}")
                        raise NetworkError(msg) if remote else LimitExceeded(msg)
                    if _du(self.clone_dir) > self.limits.max_repo_bytes:
                        _kill_group(proc)
                        raise LimitExceeded(f"refused git source {quote(self.source)}: clone is larger than "
                                            f"max_repo_bytes {self.limits.max_repo_bytes}")
            except BaseException:
                if proc.poll() is None:
                    _kill_group(proc)
                raise
        if _du(self.clone_dir) > self.limits.max_repo_bytes:
            raise LimitExceeded(f"refused git source {quote(self.source)}: clone is larger than "
                                f"max_repo_bytes {self.limits.max_repo_bytes}")
        if proc.returncode != 0:
            raise _classify_clone_failure(self.source, err_path.read_bytes(), remote)

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
                    yield _parse_ls_tree(rec)
            if buf:
                yield _parse_ls_tree(buf)
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise NoaError(f"git ls-tree in NOA's clone of {quote(self.source)} failed: {_tail(err)}")
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def _parse_ls_tree(rec: bytes) -> tuple[str, str, str, str, str]:
    meta, sep, path = rec.partition(b"\t")
    fields = meta.split()
    if not sep or len(fields) != 4:
        raise NoaError(f"unexpected git ls-tree output {quote(rec[:120])}")
    mode, otype, oid, size = (f.decode("ascii") for f in fields)
    return mode, otype, oid, size, path.decode("utf-8", "surrogateescape")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _du(path: Path) -> int:
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


def _tail(err: bytes) -> str:
    lines = [" ".join(line.split()) for line in err.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    useful = [line for line in lines if not line.lower().startswith(_TAIL_SKIP)]
    pick = (useful or lines or ["no message"])
    text = pick[0] if any(h in pick[0].lower() for h in _FSCK_HINTS) else pick[-1]
    return text[:300]


def _classify_clone_failure(source: str, err: bytes, remote: bool) -> NoaError:
    low = err.decode("utf-8", "replace").lower()
    detail = _tail(err)
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


def fetch_git(location: str, tree: SafeTree, work: Path, limits: IngestLimits) -> GitResult:
    """Clone ``location`` into ``work`` and write HEAD's files into ``tree``."""
    arg = check_git_location(location)
    remote = arg.lower().startswith("https://")
    if not remote and limits.refuse_repo_code:
        local = arg[len("file://"):] if arg.lower().startswith("file://") else arg
        refuse_code_carrying_repo(Path(local))
    git = _Git(work, limits, location)
    git.clone(arg, remote)
    head = git.head()
    shallow = (git.clone_dir / "shallow").exists()

    entries: list[tuple[tuple[str, ...], str, str, int, str]] = []
    total = 0
    listing = contextlib.closing(git.ls_tree(head))
    with listing as entries_iter:
        for mode, otype, oid, size_text, path in entries_iter:
            _check_entry(tree, limits, entries, mode, otype, oid, size_text, path)
            total += int(size_text) if size_text.isdigit() else 0
            if total > limits.max_total_bytes:
                raise tree.refuse(LimitExceeded, path,
                                  f"drop would exceed max_total_bytes {limits.max_total_bytes}")
    _materialise(git, tree, entries)

    roots: tuple[str, ...] = ()
    if not shallow:
        out = git.run("rev-list", "--max-parents=0", head).stdout.decode("ascii").split()
        roots = tuple(out)
    ref = git.run("symbolic-ref", "-q", "HEAD", check=False).stdout.decode("utf-8", "replace").strip()
    count = git.run("rev-list", "--count", head).stdout.decode("ascii").strip()
    meta: dict[str, Any] = {
        "git_url": location,
        "head_ref": ref or None,
        "shallow": shallow,
        "commit_count": int(count) if count.isdigit() and not shallow else None,
    }
    special = [p for _parts, p, *_ in entries if p.rsplit("/", 1)[-1] in (".gitmodules", ".gitattributes")]
    if special:
        meta["git_special_files"] = special
    return GitResult(head_commit=head, root_commits=roots, meta=meta)


def _check_entry(tree: SafeTree, limits: IngestLimits, entries: list[tuple[tuple[str, ...], str, str, int, str]],
                 mode: str, otype: str, oid: str, size_text: str, path: str) -> None:
    if mode == "120000":
        raise tree.refuse(HostileInput, path, "symlinks are not accepted in git sources")
    if mode == "160000" or otype == "commit":
        raise tree.refuse(HostileInput, path, "submodules (gitlinks) are not accepted; they are never fetched")
    if otype != "blob" or not (mode in (_MODE_FILE, _MODE_EXEC) or mode in _LEGACY_FILE_MODES):
        raise tree.refuse(BadInput, path, f"unsupported git tree entry (mode {mode}, type {otype})")
    parts = tree.clean(path)
    size = int(size_text)
    if size > limits.max_file_bytes:
        raise tree.refuse(LimitExceeded, path, f"file is {size} bytes, over max_file_bytes {limits.max_file_bytes}")
    if len(entries) + 1 > limits.max_files:
        raise tree.refuse(LimitExceeded, path, f"drop has more than max_files {limits.max_files} files")
    entries.append((parts, path, oid, size, mode))


def _materialise(git: _Git, tree: SafeTree, entries: list[tuple[tuple[str, ...], str, str, int, str]]) -> None:
    if not entries:
        return
    proc = git.popen("cat-file", "--batch", stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    out: IO[bytes] = proc.stdout
    try:
        for parts, path, oid, size, mode in entries:
            proc.stdin.write(oid.encode("ascii") + b"\n")
            proc.stdin.flush()
            header = out.readline().split()
            if len(header) != 3 or header[1] != b"blob" or header[0].decode("ascii") != oid:
                raise NoaError(f"git cat-file in NOA's clone gave an unexpected answer for {quote(path)}")
            if int(header[2]) != size:
                raise tree.refuse(HostileInput, path, "blob size differs from the tree listing")
            remaining = size

            def read(n: int, _out: IO[bytes] = out) -> bytes:
                nonlocal remaining
                if remaining <= 0:
                    return b""
                data = _out.read(min(n, remaining))
                if not data:
                    raise NoaError(f"git cat-file in NOA's clone ended early while reading {quote(path)}")
                remaining -= len(data)
                return data

            tree.write_file(parts, path, read, executable=(mode == _MODE_EXEC), declared_size=size)
            if out.read(1) != b"\n":
                raise NoaError(f"git cat-file in NOA's clone gave a malformed record for {quote(path)}")
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


__all__ = ["GIT_CONFIG", "GitResult", "check_git_location", "fetch_git", "is_git_dir", "repo_name_hint"]
