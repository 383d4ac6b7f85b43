"""Git objects of the workspace repository: a drop's files stored as blobs and one tree, trees read and grafted.

Dropped content is hostile, so it is stored with plumbing only, never ``git add``: one
``git fast-import`` streams every file's bytes as a blob (each file opened with
``O_NOFOLLOW``; fast-import never looks at attributes) and builds the project's tree in one
pack; ``read-tree`` of that tree into a throw-away index then applies git's own path rules
as a second guard; ``mktree`` grafts it under ``projects/<name>`` of a parent commit's tree.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from noa_core.errors import HostileInput
from noa_core.sandbox.git import NOA_EMAIL, NOA_NAME, Git, GitError
from noa_core.sandbox.paths import DropScan

PROJECTS_DIR = "projects"


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a git tree, as ``ls-tree``/``mktree`` spell it."""

    mode: bytes
    type: bytes
    sha: bytes
    name: bytes


def stream_blob(out: IO[bytes], mark: int, path: str) -> None:
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


def c_quote(raw: bytes) -> bytes:
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


def write_project_tree(git: Git, scan: DropScan, tmp_dir: Path) -> str:
    """Store the drop's files and their tree in one ``git fast-import`` pack; returns the tree id.

    Every file is streamed as a blob, bytes as they are (opened with ``O_NOFOLLOW``;
    fast-import never looks at attributes). A throw-away commit on a private ref
    ``refs/noa/tmp/<time>-<uuid>`` makes fast-import build the tree; the ref is deleted at once.
    The tree is then checked by :func:`verify_tree` (its throw-away index lives in ``tmp_dir``).
    """
    tmp_ref = f"refs/noa/tmp/{int(time.time())}-{uuid.uuid4().hex}"
    root = os.fspath(scan.root)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(git.argv(["fast-import", "--quiet", "--done", "--depth=10"]),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                env=dict(git.env))
        assert proc.stdin is not None
        try:
            for mark, entry in enumerate(scan.files, 1):
                stream_blob(proc.stdin, mark, os.path.join(root, entry.rel))
            proc.stdin.write(b"commit %s\ncommitter %s <%s> 0 +0000\ndata 0\n"
                             % (tmp_ref.encode(), NOA_NAME.encode(), NOA_EMAIL.encode()))
            proc.stdin.write(b"".join(b"M %s :%d %s\n" % (b"100755" if entry.executable else b"100644", mark,
                                                           c_quote(entry.rel_bytes))
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
        tree = git.out("rev-parse", "--verify", f"{tmp_ref}^{{tree}}")
    finally:
        git.run("update-ref", "-d", tmp_ref, check=False)
    verify_tree(git, tree, tmp_dir)
    return tree


def verify_tree(git: Git, tree: str, tmp_dir: Path) -> None:
    """Second guard after :func:`~noa_core.sandbox.paths.scan_drop`: git's own path rules (``.git``
    in any spelling, NTFS/HFS+ aliases) applied by reading the tree into a throw-away index."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    index = tmp_dir / f"index-{uuid.uuid4().hex}"
    try:
        git.run("read-tree", tree, extra_env={"GIT_INDEX_FILE": os.fspath(index)})
    except GitError as exc:
        if "invalid path" in exc.stderr:
            raise HostileInput(f"drop refused: {exc.one_line()}") from None
        raise
    finally:
        for leftover in (index, index.with_name(index.name + ".lock")):
            leftover.unlink(missing_ok=True)


def ls_tree(git: Git, treeish: str) -> list[TreeEntry]:
    raw = git.run("ls-tree", "-z", "--full-tree", treeish).stdout
    entries = []
    for record in filter(None, raw.split(b"\0")):
        meta, _, name = record.partition(b"\t")
        mode, type_, sha = meta.split(b" ")
        entries.append(TreeEntry(mode, type_, sha, name))
    return entries


def mktree(git: Git, entries: Sequence[TreeEntry]) -> str:
    data = b"".join(b"%s %s %s\t%s\0" % (e.mode, e.type, e.sha, e.name) for e in entries)
    return git.out("mktree", "-z", input=data)


def tree_of(git: Git, revision: str) -> str:
    return git.out("rev-parse", "--verify", "--quiet", f"{revision}^{{tree}}")


def project_tree(git: Git, commit: str, project: str) -> str | None:
    """The tree id of ``projects/<project>`` at ``commit``; None when the commit lacks the project."""
    proc = git.run("rev-parse", "--verify", "--quiet", f"{commit}:{PROJECTS_DIR}/{project}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def projects_at(git: Git, commit: str) -> list[str]:
    """The names under ``projects/`` at ``commit``, sorted."""
    proc = git.run("ls-tree", "-z", "--name-only", f"{commit}:{PROJECTS_DIR}", check=False)
    if proc.returncode != 0:
        return []
    return sorted(n.decode("utf-8", "surrogateescape") for n in proc.stdout.split(b"\0") if n)


def graft(git: Git, parent: str, project: str, subtree: str) -> str:
    """The root tree of ``parent`` with ``projects/<project>`` replaced by ``subtree``."""
    name = project.encode()
    root = ls_tree(git, parent)
    holder = next((e for e in root if e.name == PROJECTS_DIR.encode() and e.type == b"tree"), None)
    projects = ls_tree(git, holder.sha.decode()) if holder else []
    projects = [e for e in projects if e.name != name] + [TreeEntry(b"040000", b"tree", subtree.encode(), name)]
    projects_tree = mktree(git, projects)
    root = [e for e in root if e.name != PROJECTS_DIR.encode()]
    root.append(TreeEntry(b"040000", b"tree", projects_tree.encode(), PROJECTS_DIR.encode()))
    return mktree(git, root)
