"""The workspace repository: one bare git repository, four sandbox branches, four worktrees.

Layout (under ``NOA_HOME``)::

    repo/                 bare repository; branches sandbox/{A-feature,B-bugfix,C-experimental,D-integration}
    repo/info/attributes  written by NOA: neutralises every dropped .gitattributes (see below)
    repo/noa/             NOA's lock files
    sandboxes/{A,B,C,D}/  one worktree per branch (a read-only view: NOA rewrites them)

Each project lives in ``projects/<name>/`` on a branch.

Dropped content is hostile, so it is committed with plumbing only, never ``git add``:

1. one ``git fast-import`` stores every file's bytes as a blob and builds the project's
   tree, all in one pack (NOA streams each file, opened with ``O_NOFOLLOW``; fast-import
   never looks at attributes and writes no loose objects);
2. ``read-tree`` of that tree into a throw-away index applies git's own path rules as a
   second guard (``.git`` in any spelling is refused before anything refers to it);
3. ``mktree`` grafts the tree under ``projects/`` of the parent commit's tree,
   ``commit-tree`` makes the commit, and ``update-ref <ref> <new> <old>`` moves the branch
   only if nobody moved it meanwhile (compare-and-swap; NOA retries on a lost race);
4. the worktree is refreshed with ``read-tree -u --reset`` under a per-sandbox lock.

Git's own and the user's configuration are ignored (see :mod:`noa_core.sandbox.git`),
hooks, fsmonitor and symlinks are off, and ``info/attributes`` (which outranks in-tree
``.gitattributes``) resets ``filter``, ``text``, ``eol``, ``ident``,
``working-tree-encoding``, ``diff`` and ``merge`` to git's defaults, so no filter driver,
end-of-line or encoding conversion named by a drop ever applies, on store or checkout.
Only regular files land (mode 100644 or 100755): no symlinks, no submodules, nothing
named like ``.git`` (see :mod:`noa_core.sandbox.paths`).

How a drop lands (``land_drop``): the project's directory on the sandbox branch is
*replaced* by the drop (files missing from the drop are deleted), everything else on the
branch is kept. The parent commit is:

* ``sandbox="D"``: D's head (seeding the integration line; the merge flow uses D too);
* ``base="D"``: D's head, whatever the sandbox had (the sandbox's own unmerged commits
  leave the branch: they stay reachable from the reflog only);
* ``base="sandbox"`` (default): the sandbox's head, except that a sandbox that is behind
  D and has no commits of its own is first fast-forwarded to D. A sandbox with its own
  commits keeps them and is not rebased or merged; if D moved meanwhile, the sandbox
  merge flow's conflict check sees it.

Because the project directory is replaced wholesale, ``git diff D <sandbox> --
projects/<name>`` is always exactly the change from the integrated version to the drop.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from noa_core.config import HomeLayout
from noa_core.errors import BadInput, HostileInput
from noa_core.manifest import PROJECT_NAME_PATTERN
from noa_core.sandbox.git import NOA_EMAIL, NOA_NAME, Git, GitError, WorkspaceError
from noa_core.sandbox.paths import DropScan, SkippedPath, scan_drop
from noa_core.sandbox.sandboxes import Sandbox

PROJECTS_DIR = "projects"
INITIAL_MESSAGE = "workspace created"
PROJECT_NAME_RE = re.compile(PROJECT_NAME_PATTERN)
CAS_ATTEMPTS = 8

INFO_ATTRIBUTES = (
    "# Written by NOA ARK OS. This file outranks every .gitattributes in the tree: dropped\n"
    "# attributes must not pick filter drivers or change bytes on store or checkout.\n"
    "* !filter !text !crlf !eol !ident !working-tree-encoding !diff !merge !export-subst !export-ignore\n"
)

REPO_CONFIG: tuple[tuple[str, str], ...] = (
    ("user.name", NOA_NAME),
    ("user.email", NOA_EMAIL),
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.symlinks", "false"),
    ("core.autocrlf", "false"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "true"),
    ("core.logAllRefUpdates", "always"),
    ("advice.detachedHead", "false"),
    ("gc.autoDetach", "false"),
)

Base = Literal["sandbox", "D"]


class ConcurrentUpdate(WorkspaceError):
    """A branch kept moving under NOA's compare-and-swap; nothing was changed."""


@dataclass(frozen=True)
class FileChange:
    path: str                 # relative to the project directory
    status: str               # A added, M modified, D deleted, T type (mode) changed
    insertions: int | None    # None for binary files
    deletions: int | None


@dataclass(frozen=True)
class DiffStat:
    files_changed: int
    insertions: int
    deletions: int
    changes: tuple[FileChange, ...]

    @property
    def lines_changed(self) -> int:
        return self.insertions + self.deletions


@dataclass(frozen=True)
class LandedDrop:
    """The outcome of :meth:`WorkspaceRepo.land_drop`.

    ``files_changed``/``insertions``/``deletions`` are ``git diff D <branch> --
    projects/<project>`` right after landing (for a landing into D itself: against D's
    previous head). ``is_update`` is true when D already had the project.
    """

    commit: str
    parent: str
    branch: str
    sandbox: Sandbox
    project: str
    files_changed: int
    insertions: int
    deletions: int
    is_update: bool
    fast_forwarded: bool = False   # the sandbox was behind D with no own commits: moved to D first
    unchanged: bool = False        # the branch already had exactly this content: no new commit
    file_count: int = 0
    skipped: tuple[SkippedPath, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class SandboxStatus:
    sandbox: Sandbox
    branch: str
    head: str
    ahead_of_D: int
    behind_D: int
    projects: tuple[str, ...]


@dataclass(frozen=True)
class DropCommit:
    """A commit that landed a drop (it carries a ``Drop-Id:`` trailer)."""

    commit: str
    drop_id: str
    project: str | None
    subject: str


@dataclass(frozen=True)
class _Entry:
    mode: bytes
    type: bytes
    sha: bytes
    name: bytes


def validate_project_name(project: str) -> str:
    if not isinstance(project, str) or not PROJECT_NAME_RE.fullmatch(project):
        raise BadInput(f"invalid project name {project!r}: use letters, digits, '.', '_', '+', '-' "
                       f"(starting with a letter or digit, at most 100 characters)")
    return project


def _stream_blob(out: IO[bytes], mark: int, path: str) -> None:
    """Write one ``blob`` command for fast-import, reading ``path`` without following symlinks."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HostileInput(f"{path}: no longer a regular file")
        remaining = st.st_size
        out.write(b"blob\nmark :%d\ndata %d\n" % (mark, remaining))
        while remaining:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise HostileInput(f"{path}: shrank while being read")
            out.write(chunk)
            remaining -= len(chunk)
        out.write(b"\n")
    finally:
        os.close(fd)


def _c_quote(raw: bytes) -> bytes:
    """A path quoted the way git's ``unquote_c_style`` reads it (fast-import accepts any byte but NUL)."""
    out = bytearray(b'"')
    for byte in raw:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte >= 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _one_line(text: str) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock between threads and processes (each call opens its own file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class WorkspaceRepo:
    """The workspace repository under ``layout.repo`` and its worktrees under ``layout.sandboxes``."""

    def __init__(self, layout: HomeLayout) -> None:
        self.layout = layout
        self.git = Git(git_dir=layout.repo)
        self._ready = False

    # paths ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.layout.repo

    def worktree(self, sandbox: Sandbox | str) -> Path:
        return self.layout.sandboxes / Sandbox.parse(sandbox).value

    @property
    def _noa_dir(self) -> Path:
        return self.layout.repo / "noa"

    def _lock(self, name: str) -> AbstractContextManager[None]:
        return _flock(self._noa_dir / "locks" / f"{name}.lock")

    # set-up -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create or repair the repository, its four branches and worktrees (idempotent)."""
        self.layout.repo.mkdir(parents=True, exist_ok=True)
        with self._lock("repo"):
            if not (self.layout.repo / "HEAD").is_file():
                Git().run("init", "--bare", "--quiet", f"--initial-branch={Sandbox.D.branch}",
                          os.fspath(self.layout.repo))
            self._configure()
            heads = self._heads()
            d_head = heads.get(Sandbox.D)
            if d_head is None:
                empty = self._mktree([])
                d_head = self.git.out("commit-tree", empty, "-m", INITIAL_MESSAGE)
                if not self._update_ref(Sandbox.D.ref, d_head, None, INITIAL_MESSAGE):
                    d_head = self._heads()[Sandbox.D]
            for sandbox in (Sandbox.A, Sandbox.B, Sandbox.C):
                if sandbox not in heads:
                    self._update_ref(sandbox.ref, d_head, None, f"branch {sandbox.branch} created at D")
            self._ensure_worktrees()
            self._remove_stale_tmp_refs()
            self.maintain()
        self._ready = True

    def _remove_stale_tmp_refs(self, max_age_s: float = 3600.0) -> None:
        """Private refs left by a landing that was killed between fast-import and its clean-up."""
        out = self.git.out("for-each-ref", "--format=%(refname)", "refs/noa/tmp/")
        cutoff = time.time() - max_age_s
        for ref in out.splitlines():
            stamp = ref.rsplit("/", 1)[-1].split("-", 1)[0]
            if stamp.isdigit() and int(stamp) < cutoff:
                self.git.run("update-ref", "-d", ref, check=False)

    def maintain(self) -> None:
        """Let git pack loose objects and the one pack per landing when its thresholds are met."""
        self.git.run("gc", "--auto", "--quiet")

    def _ensure_ready(self) -> None:
        if not self._ready:
            self.ensure()

    def _configure(self) -> None:
        raw = self.git.run("config", "--local", "-z", "--list").stdout.decode("utf-8", "replace")
        current: dict[str, str] = {}
        for record in filter(None, raw.split("\0")):
            key, _, value = record.partition("\n")
            current[key.lower()] = value
        for key, value in REPO_CONFIG:
            if current.get(key.lower()) != value:
                self.git.run("config", "--local", key, value)
        info = self.layout.repo / "info" / "attributes"
        if not info.is_file() or info.read_text(encoding="utf-8") != INFO_ATTRIBUTES:
            info.parent.mkdir(parents=True, exist_ok=True)
            tmp = info.with_name(f".attributes-{uuid.uuid4().hex}")
            tmp.write_text(INFO_ATTRIBUTES, encoding="utf-8")
            os.replace(tmp, info)

    def _registered_worktrees(self) -> dict[Path, str | None]:
        out = self.git.out("worktree", "list", "--porcelain")
        result: dict[Path, str | None] = {}
        for block in out.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
            if "worktree" in fields and "bare" not in fields:
                result[Path(fields["worktree"]).resolve()] = fields.get("branch")
        return result

    def _ensure_worktrees(self) -> None:
        self.layout.sandboxes.mkdir(parents=True, exist_ok=True)
        registered = self._registered_worktrees()
        for sandbox in Sandbox:
            wt = self.worktree(sandbox)
            branch = registered.get(wt.resolve(), "missing")
            if branch == sandbox.ref and (wt / ".git").is_file():
                continue
            if branch not in ("missing", sandbox.ref):
                raise WorkspaceError(f"{wt} is a worktree of {branch}, expected {sandbox.ref}")
            if branch == "missing" and (wt / ".git").is_file():
                # NOA_HOME was moved (worktree links are absolute paths): let git re-link both ways
                self.git.run("worktree", "repair", os.fspath(wt), check=False)
                if self._registered_worktrees().get(wt.resolve()) == sandbox.ref:
                    self._refresh_worktree(sandbox)
                    continue
            self.git.run("worktree", "prune")
            if wt.exists() and any(wt.iterdir()):
                raise WorkspaceError(f"{wt} exists and is not the worktree of {sandbox.branch}: move it away")
            self.git.run("worktree", "add", "--no-checkout", "--quiet", os.fspath(wt), sandbox.branch)
            self._refresh_worktree(sandbox)

    def refresh_worktree(self, sandbox: Sandbox | str) -> None:
        """Rewrite a sandbox's worktree from its branch (after a ref update by another flow)."""
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        with self._lock(sb.value):
            self._refresh_worktree(sb)

    def _refresh_worktree(self, sandbox: Sandbox) -> None:
        """Make the worktree's index and files match its branch (local edits are discarded)."""
        Git(work_tree=self.worktree(sandbox)).run("read-tree", "-u", "--reset", sandbox.ref)

    # low-level plumbing -------------------------------------------------------------------

    def _heads(self) -> dict[Sandbox, str]:
        out = self.git.out("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/sandbox/")
        by_ref = dict(line.split(" ", 1) for line in out.splitlines() if line)
        return {sb: by_ref[sb.ref] for sb in Sandbox if sb.ref in by_ref}

    def head(self, sandbox: Sandbox | str) -> str:
        self._ensure_ready()
        return self._heads()[Sandbox.parse(sandbox)]

    def heads(self) -> dict[str, str]:
        """Every sandbox's head, read at once: ``{"A": sha, "B": sha, "C": sha, "D": sha}``."""
        self._ensure_ready()
        return {sb.value: sha for sb, sha in self._heads().items()}

    def _update_ref(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``; False if it moved."""
        proc = self.git.run("update-ref", "-m", _one_line(reason)[:200], ref, new, old or "", check=False)
        if proc.returncode == 0:
            return True
        stderr = proc.stderr.decode("utf-8", "replace")
        if "cannot lock ref" in stderr or "already exists" in stderr:
            return False
        raise GitError(("update-ref", ref, new), proc.returncode, stderr)

    def _ls_tree(self, treeish: str) -> list[_Entry]:
        raw = self.git.run("ls-tree", "-z", "--full-tree", treeish).stdout
        entries = []
        for record in filter(None, raw.split(b"\0")):
            meta, _, name = record.partition(b"\t")
            mode, type_, sha = meta.split(b" ")
            entries.append(_Entry(mode, type_, sha, name))
        return entries

    def _mktree(self, entries: Sequence[_Entry]) -> str:
        data = b"".join(b"%s %s %s\t%s\0" % (e.mode, e.type, e.sha, e.name) for e in entries)
        return self.git.out("mktree", "-z", input=data)

    def _tree_of(self, revision: str) -> str:
        return self.git.out("rev-parse", "--verify", "--quiet", f"{revision}^{{tree}}")

    def _project_tree(self, commit: str, project: str) -> str | None:
        proc = self.git.run("rev-parse", "--verify", "--quiet", f"{commit}:{PROJECTS_DIR}/{project}",
                            check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def _write_project_tree(self, scan: DropScan) -> str:
        """Store the drop's files and their tree in one ``git fast-import`` pack; returns the tree id.

        Every file is streamed as a blob, bytes as they are (opened with ``O_NOFOLLOW``;
        fast-import never looks at attributes). A throw-away commit on a private ref
        ``refs/noa/tmp/<time>-<uuid>`` makes fast-import build the tree; the ref is deleted at once.
        """
        tmp_ref = f"refs/noa/tmp/{int(time.time())}-{uuid.uuid4().hex}"
        root = os.fspath(scan.root)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(self.git.argv(["fast-import", "--quiet", "--done", "--depth=10"]),
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                    env=dict(self.git.env))
            assert proc.stdin is not None
            try:
                for mark, entry in enumerate(scan.files, 1):
                    _stream_blob(proc.stdin, mark, os.path.join(root, entry.rel))
                proc.stdin.write(b"commit %s\ncommitter %s <%s> 0 +0000\ndata 0\n"
                                 % (tmp_ref.encode(), NOA_NAME.encode(), NOA_EMAIL.encode()))
                proc.stdin.write(b"".join(b"M %s :%d %s\n" % (b"100755" if entry.executable else b"100644", mark,
                                                               _c_quote(entry.rel_bytes))
                                          for mark, entry in enumerate(scan.files, 1)))
                proc.stdin.write(b"\ndone\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass  # fast-import died: its exit status and stderr say why
            except BaseException:
                proc.kill()
                raise
            finally:
                returncode = proc.wait()
            if returncode != 0:
                errors.seek(0)
                raise GitError(("fast-import",), returncode, errors.read().decode("utf-8", "replace"))
        try:
            tree = self.git.out("rev-parse", "--verify", f"{tmp_ref}^{{tree}}")
        finally:
            self.git.run("update-ref", "-d", tmp_ref, check=False)
        self._verify_tree(tree)
        return tree

    def _verify_tree(self, tree: str) -> None:
        """Second guard after :func:`scan_drop`: git's own path rules (``.git`` in any spelling,
        NTFS/HFS+ aliases) applied by reading the tree into a throw-away index."""
        tmp = self._noa_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        index = tmp / f"index-{uuid.uuid4().hex}"
        try:
            self.git.run("read-tree", tree, extra_env={"GIT_INDEX_FILE": os.fspath(index)})
        except GitError as exc:
            if "invalid path" in exc.stderr:
                raise HostileInput(f"drop refused: {exc.one_line()}") from None
            raise
        finally:
            for leftover in (index, index.with_name(index.name + ".lock")):
                leftover.unlink(missing_ok=True)

    def _graft(self, parent: str, project: str, subtree: str) -> str:
        """The root tree of ``parent`` with ``projects/<project>`` replaced by ``subtree``."""
        name = project.encode()
        root = self._ls_tree(parent)
        holder = next((e for e in root if e.name == PROJECTS_DIR.encode() and e.type == b"tree"), None)
        projects = self._ls_tree(holder.sha.decode()) if holder else []
        projects = [e for e in projects if e.name != name] + [_Entry(b"040000", b"tree", subtree.encode(), name)]
        projects_tree = self._mktree(projects)
        root = [e for e in root if e.name != PROJECTS_DIR.encode()]
        root.append(_Entry(b"040000", b"tree", projects_tree.encode(), PROJECTS_DIR.encode()))
        return self._mktree(root)

    def _diff(self, a: str, b: str, prefix: str | None) -> DiffStat:
        """Changes from tree-ish ``a`` to ``b``, limited to directory ``prefix`` (paths relative to it)."""
        spec = ["--", f"{prefix}/"] if prefix else []
        common = ["diff-tree", "-r", "-z", "--no-renames", "--no-textconv"]
        numstat = self.git.run(*common, "--numstat", a, b, *spec).stdout
        names = self.git.run(*common, "--name-status", a, b, *spec).stdout
        strip = len(prefix) + 1 if prefix else 0
        status_of: dict[bytes, str] = {}
        fields = names.split(b"\0")
        for i in range(0, len(fields) - 1, 2):
            status_of[fields[i + 1]] = fields[i].decode()
        changes = []
        for record in filter(None, numstat.split(b"\0")):
            ins, dels, path = record.split(b"\t", 2)
            changes.append(FileChange(
                path=path[strip:].decode("utf-8", "surrogateescape"), status=status_of.get(path, "M"),
                insertions=None if ins == b"-" else int(ins), deletions=None if dels == b"-" else int(dels)))
        return DiffStat(files_changed=len(changes), insertions=sum(c.insertions or 0 for c in changes),
                        deletions=sum(c.deletions or 0 for c in changes), changes=tuple(changes))

    # landing ----------------------------------------------------------------------------

    def _scan(self, tree: Path) -> DropScan:
        tree = Path(tree)
        if not tree.is_dir():
            raise BadInput(f"{tree}: not a directory")
        scan = scan_drop(tree)
        if not scan.files:
            raise BadInput(f"{tree}: no regular files to land")
        return scan

    def compare_with_d(self, tree: Path, project: str) -> DiffStat | None:
        """What landing ``tree`` would change in D's ``projects/<project>``; None if D lacks the project.

        Stores the drop's blobs (harmless: they are reused by the landing, or collected by gc).
        """
        self._ensure_ready()
        validate_project_name(project)
        current = self._project_tree(self._heads()[Sandbox.D], project)
        if current is None:
            return None
        return self._diff(current, self._write_project_tree(self._scan(tree)), None)

    def _message(self, message: str, project: str, sandbox: Sandbox, drop_id: str | None,
                 source: str | None) -> bytes:
        subject = message.replace("\0", " ").strip() or f"land {project}"
        trailers = [f"Project: {project}", f"Sandbox: {sandbox.value} ({sandbox.branch})"]
        if drop_id:
            trailers.append(f"Drop-Id: {_one_line(drop_id)}")
        if source:
            trailers.append(f"Source: {_one_line(source)}")
        return (subject + "\n\n" + "\n".join(trailers) + "\n").encode("utf-8", "surrogateescape")

    def _choose_parent(self, sandbox: Sandbox, base: Base, heads: dict[Sandbox, str]) -> tuple[str, bool]:
        d_head = heads[Sandbox.D]
        if sandbox is Sandbox.D or base == "D":
            return d_head, False
        own = heads[sandbox]
        if own != d_head and self.git.ok("merge-base", "--is-ancestor", own, d_head):
            return d_head, True  # behind D with no commits of its own: fast-forward first
        return own, False

    def land_drop(self, tree: Path, project: str, sandbox: Sandbox | str, message: str, *,
                  base: Base = "sandbox", drop_id: str | None = None, source: str | None = None) -> LandedDrop:
        """Commit ``tree`` as ``projects/<project>/`` on ``sandbox``'s branch and refresh its worktree.

        See the module documentation for the choice of parent commit and what is skipped.
        """
        started = time.perf_counter()
        sb = Sandbox.parse(sandbox)
        validate_project_name(project)
        if base not in ("sandbox", "D"):
            raise BadInput(f"unknown base {base!r}: expected 'sandbox' or 'D'")
        scan = self._scan(tree)
        self._ensure_ready()
        subtree = self._write_project_tree(scan)
        body = self._message(message, project, sb, drop_id, source)
        with self._lock(sb.value):
            for _attempt in range(CAS_ATTEMPTS):
                heads = self._heads()
                d_head, old = heads[Sandbox.D], heads[sb]
                parent, fast_forwarded = self._choose_parent(sb, base, heads)
                root = self._graft(parent, project, subtree)
                unchanged = root == self._tree_of(parent)
                commit = parent if unchanged else self.git.out("commit-tree", root, "-p", parent, "-F", "-",
                                                               input=body)
                reason = f"noa: land {project}" + (f" ({drop_id})" if drop_id else "")
                if commit == old or self._update_ref(sb.ref, commit, old, reason):
                    break
            else:
                raise ConcurrentUpdate(f"{sb.branch} kept moving while landing {project}; nothing was landed")
            self._refresh_worktree(sb)
        is_update = self._project_tree(d_head, project) is not None
        stats = self._diff(parent if sb is Sandbox.D else d_head, commit, f"{PROJECTS_DIR}/{project}")
        return LandedDrop(commit=commit, parent=parent, branch=sb.branch, sandbox=sb, project=project,
                          files_changed=stats.files_changed, insertions=stats.insertions,
                          deletions=stats.deletions, is_update=is_update, fast_forwarded=fast_forwarded,
                          unchanged=unchanged, file_count=len(scan.files), skipped=scan.skipped,
                          seconds=time.perf_counter() - started)

    # queries and maintenance -------------------------------------------------------------

    def projects(self, sandbox: Sandbox | str) -> list[str]:
        self._ensure_ready()
        return self._projects_at(self._heads()[Sandbox.parse(sandbox)])

    def _projects_at(self, commit: str) -> list[str]:
        proc = self.git.run("ls-tree", "-z", "--name-only", f"{commit}:{PROJECTS_DIR}", check=False)
        if proc.returncode != 0:
            return []
        return sorted(n.decode("utf-8", "surrogateescape") for n in proc.stdout.split(b"\0") if n)

    def status(self) -> list[SandboxStatus]:
        self._ensure_ready()
        heads = self._heads()
        d_head = heads[Sandbox.D]
        result = []
        for sb in Sandbox:
            behind, ahead = 0, 0
            if heads[sb] != d_head:
                counts = self.git.out("rev-list", "--left-right", "--count", f"{d_head}...{heads[sb]}")
                behind, ahead = (int(n) for n in counts.split())
            result.append(SandboxStatus(sandbox=sb, branch=sb.branch, head=heads[sb], ahead_of_D=ahead,
                                        behind_D=behind, projects=tuple(self._projects_at(heads[sb]))))
        return result

    def diffstat(self, sandbox: Sandbox | str, project: str) -> DiffStat:
        """``git diff D <sandbox> -- projects/<project>``: what the sandbox changes in that project."""
        self._ensure_ready()
        validate_project_name(project)
        heads = self._heads()
        return self._diff(heads[Sandbox.D], heads[Sandbox.parse(sandbox)], f"{PROJECTS_DIR}/{project}")

    def reset_to_d(self, sandbox: Sandbox | str) -> str:
        """Point the sandbox at D's head (its own commits leave the branch) and refresh its worktree."""
        sb = Sandbox.parse(sandbox)
        if sb is Sandbox.D:
            raise BadInput("sandbox D cannot be reset to itself")
        self._ensure_ready()
        with self._lock(sb.value):
            for _attempt in range(CAS_ATTEMPTS):
                heads = self._heads()
                if heads[sb] == heads[Sandbox.D] or self._update_ref(sb.ref, heads[Sandbox.D], heads[sb],
                                                                      f"noa: reset {sb.branch} to D"):
                    break
            else:
                raise ConcurrentUpdate(f"{sb.branch} kept moving while resetting it to D")
            self._refresh_worktree(sb)
            return heads[Sandbox.D]

    # moving branches (used by the sandbox merge) -----------------------------------------

    def move_to(self, sandbox: Sandbox | str, new: str, *, expected: str, reason: str) -> bool:
        """Compare-and-swap ``sandbox``'s branch from ``expected`` to commit ``new``, then refresh its worktree.

        Returns False, changing nothing, when the branch is not at ``expected``. If the
        worktree cannot be refreshed, the branch is put back to ``expected`` and the error raised.
        """
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        new = self.git.out("rev-parse", "--verify", "--quiet", f"{new}^{{commit}}")
        with self._lock(sb.value):
            if expected == new:
                return self._heads().get(sb) == new
            if not self._update_ref(sb.ref, new, expected, reason):
                return False
            try:
                self._refresh_worktree(sb)
            except BaseException:
                self._update_ref(sb.ref, expected, new, f"undo: {reason}")
                raise
        return True

    def drops(self, sandbox: Sandbox | str) -> list[DropCommit]:
        """The drops ``sandbox`` holds that D does not (newest first); for D, every drop in its history.

        Read from the ``Drop-Id:`` trailers of the commits in ``D..<sandbox>``.
        """
        sb = Sandbox.parse(sandbox)
        self._ensure_ready()
        heads = self._heads()
        revs = [heads[sb]] if sb is Sandbox.D else [heads[sb], "--not", heads[Sandbox.D]]
        fmt = "%H%x00%s%x00%(trailers:key=Drop-Id,valueonly,separator=%x2C)%x00" \
              "%(trailers:key=Project,valueonly,separator=%x2C)%x00%x1e"
        out = self.git.out("log", f"--format={fmt}", *revs)
        result = []
        for record in out.split("\x1e"):
            fields = record.strip("\n").split("\0")
            if len(fields) < 4 or not fields[2].strip():
                continue
            commit, subject, drop_ids, projects = fields[:4]
            project = projects.split(",")[0].strip() or None
            for drop_id in drop_ids.split(","):
                if drop_id.strip():
                    result.append(DropCommit(commit=commit, drop_id=drop_id.strip(), project=project,
                                             subject=subject))
        return result

    def merge_lock(self) -> AbstractContextManager[None]:
        """Held by the sandbox merge for its whole run: one merge at a time per workspace."""
        return self._lock("merge")
