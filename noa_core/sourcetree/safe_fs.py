"""Read-only access to a received (hostile) source tree.

Every analyzer lists files through :func:`walk` and reads them through
:func:`read_bytes` / :func:`read_text`. Together they guarantee that

* symbolic links are never followed (neither directories nor files): they are counted
  and left alone, so nothing outside the tree is ever read;
* only regular files are opened (a FIFO or a device node would block or misbehave),
  and with ``O_NOFOLLOW`` so a link swapped in after the walk is refused;
* reads are capped in size;
* version-control metadata (``.git`` ...) and tool caches are not listed;
* vendored and build-output directories are marked, so each analyzer decides whether
  they count (the secret scan reads them, the language totals exclude them).

Nothing here writes into the tree.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from noa_core.sourcetree.test_paths import why_test_file

#: Directories never listed: VCS metadata and tool caches, not part of the source.
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr", "__pycache__", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".tox", ".nox", ".idea", ".vscode",
})

#: Directory names that hold third-party code copied into the tree.
VENDORED_DIRS = frozenset({
    "vendor", "vendored", "_vendor", "third_party", "third-party", "thirdparty",
    "node_modules", "bower_components", ".venv", "venv", "site-packages",
    ".eggs", "extern", "_vendored",
})

#: Directory names that are build outputs when they sit next to a build manifest.
BUILD_OUTPUT_DIRS = frozenset({"dist", "build", "target", "out", "_build"})
BUILD_MANIFESTS = frozenset({
    "pyproject.toml", "setup.py", "setup.cfg", "Cargo.toml", "package.json", "go.mod",
    "pom.xml", "build.gradle", "build.gradle.kts", "CMakeLists.txt", "Makefile", "conf.py",
})

TEST_DIR_NAMES = frozenset({"tests", "test"})

DEFAULT_MAX_FILES = 200_000
DEFAULT_READ_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One regular file of the tree. ``rel`` is a POSIX path relative to the root."""

    rel: str
    size: int
    vendored: bool

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.rel).suffix.lower()

    @property
    def parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.rel).parts


@dataclass(frozen=True)
class Listing:
    """The files of a tree, plus what the walk refused to enter or list."""

    root: Path
    files: tuple[FileEntry, ...]
    symlinks_skipped: int = 0
    special_skipped: int = 0
    truncated: bool = False

    def source_files(self) -> tuple[FileEntry, ...]:
        """Files outside vendored / build-output directories."""
        return tuple(f for f in self.files if not f.vendored)


def _is_vendored_dir(name: str, parent_names: set[str], parent: Path) -> bool:
    if name in VENDORED_DIRS:
        return True
    if name in BUILD_OUTPUT_DIRS and parent_names & BUILD_MANIFESTS:
        return True
    # A virtual environment, whatever it is called.
    try:
        st = os.lstat(parent / name / "pyvenv.cfg")
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


def walk(tree: Path, *, max_files: int = DEFAULT_MAX_FILES) -> Listing:
    """List the regular files under ``tree`` without following any symbolic link."""
    root = Path(tree)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    files: list[FileEntry] = []
    symlinks = special = 0
    truncated = False
    # (absolute dir, relative posix prefix, inside vendored?)
    stack: list[tuple[Path, str, bool]] = [(root, "", False)]
    while stack:
        directory, prefix, vendored = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        names = {e.name for e in entries}
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                symlinks += 1
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name in IGNORED_DIRS:
                    continue
                sub_vendored = vendored or _is_vendored_dir(entry.name, names, directory)
                stack.append((Path(entry.path), rel + "/", sub_vendored))
            elif stat.S_ISREG(st.st_mode):
                if len(files) >= max_files:
                    truncated = True
                    continue
                files.append(FileEntry(rel=rel, size=st.st_size, vendored=vendored))
            else:
                special += 1
    files.sort(key=lambda f: f.rel)
    return Listing(root=root, files=tuple(files), symlinks_skipped=symlinks,
                   special_skipped=special, truncated=truncated)


def read_bytes(tree: Path, rel: str, limit: int = DEFAULT_READ_LIMIT) -> bytes:
    """Read at most ``limit`` bytes of a regular file inside ``tree``.

    Refuses a final symbolic link (``O_NOFOLLOW``) and anything that is not a regular
    file; raises :class:`OSError` then.
    """
    _check_inside(tree, rel)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(Path(tree) / rel, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {rel!r}")
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_inside(tree: Path, rel: str) -> None:
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or ".." in parts or not parts:
        raise OSError(f"path outside the tree: {rel!r}")
    current = Path(tree)
    for part in parts[:-1]:
        current = current / part
        if not stat.S_ISDIR(os.lstat(current).st_mode):  # a symlinked directory is refused
            raise OSError(f"not a plain directory on the way to {rel!r}")


def is_regular(tree: Path, rel: str) -> bool:
    """True if ``rel`` is a regular file reached without any symbolic link."""
    try:
        _check_inside(tree, rel)
        return stat.S_ISREG(os.lstat(Path(tree) / rel).st_mode)
    except OSError:
        return False


def read_text(tree: Path, rel: str, limit: int = DEFAULT_READ_LIMIT) -> str:
    """Read a file as UTF-8 text (undecodable bytes replaced)."""
    return read_bytes(tree, rel, limit).decode("utf-8", errors="replace")


def is_binary(head: bytes) -> bool:
    return b"\x00" in head


def is_test_file(rel: str) -> bool:
    """Test code or fixtures by the usual conventions (see :mod:`noa_core.sourcetree.test_paths`)."""
    return why_test_file(rel) is not None
