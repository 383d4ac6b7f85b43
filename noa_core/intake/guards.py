"""Ingestion guards shared by every source kind.

* :func:`quote` renders an untrusted name for a one-line error message.
* :func:`clean_relpath` turns an untrusted member name into checked path parts.
* :class:`SafeTree` writes plain files and directories under a root that NOA created,
  enforcing the size and count limits while the bytes stream in.

Nothing here follows a symlink: directories are walked with ``dir_fd`` and
``O_NOFOLLOW``, files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and get
exactly mode 0o644 or 0o755, directories exactly 0o755.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput, LimitExceeded

#: Directory entries NOA never takes into a drop (its own home, bytecode caches).
SKIPPED_NAMES = frozenset({".noa", "__pycache__"})

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
CHUNK = 1024 * 1024

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def quote(name: object, limit: int = 200) -> str:
    """``'name'`` with control and undecodable characters escaped, cut to ``limit``."""
    text = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else str(name)
    out = []
    for ch in text:
        if ch.isprintable() and not ("\udc80" <= ch <= "\udcff"):
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    rendered = "".join(out)
    if len(rendered) > limit:
        rendered = rendered[: limit - 3] + "..."
    return "'" + rendered.replace("'", "\\'") + "'"


def refuse(cls: type[BadInput], what: str, name: object, rule: str) -> BadInput:
    """Build the standard one-line refusal: ``refused <what> '<name>': <rule>``."""
    return cls(f"refused {what} {quote(name)}: {rule}")


def clean_relpath(raw: str, what: str, limits: IngestLimits) -> tuple[str, ...]:
    """Check an untrusted relative path and return its normalised parts.

    ``()`` means the root itself (``""``, ``"."``, ``"./"``).  Refuses (``what`` names
    the kind of entry in the message): NUL and control characters, backslashes, absolute
    paths, drive letters, ``..`` components, ``.git`` components (a nested repository
    carries hooks and config), names that are not UTF-8, paths deeper than
    ``limits.max_path_depth``, names over 255 bytes, paths over 4096 bytes.
    """
    if "\x00" in raw:
        raise refuse(HostileInput, what, raw, "NUL byte in path")
    if _CONTROL.search(raw):
        raise refuse(HostileInput, what, raw, "control character in path")
    if "\\" in raw:
        raise refuse(HostileInput, what, raw, "backslash in path (Windows separator)")
    if raw.startswith("/"):
        raise refuse(HostileInput, what, raw, "absolute path")
    if _DRIVE.match(raw):
        raise refuse(HostileInput, what, raw, "drive letter in path")
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if ".." in parts:
        raise refuse(HostileInput, what, raw, "path escapes the drop")
    if any(p.lower() == ".git" for p in parts):
        raise refuse(HostileInput, what, raw, "nested .git is not accepted (it can carry hooks and config)")
    try:
        encoded = [p.encode("utf-8") for p in parts]
    except UnicodeEncodeError:
        raise refuse(BadInput, what, raw, "path is not valid UTF-8") from None
    if len(parts) > limits.max_path_depth:
        raise refuse(LimitExceeded, what, raw,
                     f"path is {len(parts)} levels deep, over max_path_depth {limits.max_path_depth}")
    if any(len(p) > MAX_NAME_BYTES for p in encoded):
        raise refuse(LimitExceeded, what, raw, f"a path component is longer than {MAX_NAME_BYTES} bytes")
    if sum(len(p) + 1 for p in encoded) > MAX_PATH_BYTES:
        raise refuse(LimitExceeded, what, raw, f"path is longer than {MAX_PATH_BYTES} bytes")
    return parts


def exceeds_ratio(uncompressed: int, compressed: int, limits: IngestLimits) -> bool:
    """True when ``uncompressed`` is over ``max_compression_ratio`` x ``compressed``.

    The first ``limits.ratio_grace_bytes`` are always allowed, so tiny archives (whose
    headers and padding compress extremely well) are not refused.
    """
    allowed = max(limits.max_compression_ratio * max(compressed, 0), float(limits.ratio_grace_bytes))
    return uncompressed > allowed


class SafeTree:
    """A write-only view of a directory NOA created, with ingestion limits.

    ``what`` names the kind of entry in refusal messages ("archive member", "git
    entry", "directory entry").  Counters ``files`` and ``bytes`` hold what was written.
    """

    def __init__(self, root: Path, limits: IngestLimits, what: str) -> None:
        self.root = root
        self.limits = limits
        self.what = what
        self.files = 0
        self.bytes = 0
        self._names: set[tuple[str, ...]] = set()
        self._root_fd = os.open(root, _O_DIR)
        self._cached: tuple[tuple[str, ...], int] | None = None

    # -- context management -------------------------------------------------------
    def close(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __enter__(self) -> "SafeTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checks ------------------------------------------------------------------------
    def clean(self, raw: str) -> tuple[str, ...]:
        return clean_relpath(raw, self.what, self.limits)

    def refuse(self, cls: type[BadInput], name: object, rule: str) -> BadInput:
        return refuse(cls, self.what, name, rule)

    def _claim(self, parts: tuple[str, ...], name: str) -> None:
        if parts in self._names:
            raise self.refuse(HostileInput, name, "duplicate entry name")
        self._names.add(parts)

    def check_file_size(self, name: str, size: int) -> None:
        """Refuse a declared size before any byte is read."""
        if size > self.limits.max_file_bytes:
            raise self.refuse(LimitExceeded, name,
                              f"file is {size} bytes, over max_file_bytes {self.limits.max_file_bytes}")
        if self.bytes + size > self.limits.max_total_bytes:
            raise self.refuse(LimitExceeded, name,
                              f"drop would exceed max_total_bytes {self.limits.max_total_bytes}")

    # -- directories ---------------------------------------------------------------
    def _open_dir(self, parts: tuple[str, ...], name: str) -> int:
        """fd of the directory ``parts`` (created as needed); owned by the cache."""
        if self._cached is not None:
            if self._cached[0] == parts:
                return self._cached[1]
            os.close(self._cached[1])
            self._cached = None
        fd = os.dup(self._root_fd)
        try:
            for part in parts:
                created = False
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    created = True
                except FileExistsError:
                    pass
                try:
                    nfd = os.open(part, _O_DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EEXIST):
                        raise self.refuse(HostileInput, name, "conflicts with an earlier entry") from None
                    raise
                os.close(fd)
                fd = nfd
                if created:
                    os.fchmod(fd, 0o755)
        except BaseException:
            os.close(fd)
            raise
        self._cached = (parts, fd)
        return fd

    def make_dir(self, parts: tuple[str, ...], name: str) -> None:
        """Create the (possibly empty) directory ``parts``."""
        if not parts:
            return
        self._claim(parts, name)
        self._open_dir(parts, name)

    # -- files -----------------------------------------------------------------------
    def write_file(self, parts: tuple[str, ...], name: str, read: Callable[[int], bytes],
                   executable: bool = False, declared_size: int | None = None) -> int:
        """Create file ``parts`` from ``read(n)`` (returns b"" at the end); returns its size.

        The file count, ``max_file_bytes`` and ``max_total_bytes`` are enforced on the
        bytes actually read, chunk by chunk, whatever size the source declared.
        """
        if not parts:
            raise self.refuse(HostileInput, name, "a file cannot replace the drop root")
        self._claim(parts, name)
        if self.files + 1 > self.limits.max_files:
            raise self.refuse(LimitExceeded, name, f"drop has more than max_files {self.limits.max_files} files")
        if declared_size is not None:
            self.check_file_size(name, declared_size)
        dfd = self._open_dir(parts[:-1], name)
        try:
            fd = os.open(parts[-1], _O_NEWFILE, 0o600, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ELOOP, errno.EISDIR, errno.ENOTDIR):
                raise self.refuse(HostileInput, name, "conflicts with an earlier entry") from None
            raise
        self.files += 1
        written = 0
        try:
            max_file = self.limits.max_file_bytes
            max_total = self.limits.max_total_bytes
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                self.bytes += len(chunk)
                if written > max_file:
                    raise self.refuse(LimitExceeded, name, f"file is over max_file_bytes {max_file}")
                if self.bytes > max_total:
                    raise self.refuse(LimitExceeded, name, f"drop exceeds max_total_bytes {max_total}")
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            os.fchmod(fd, 0o755 if executable else 0o644)
        finally:
            os.close(fd)
        return written


__all__ = [
    "SKIPPED_NAMES",
    "SafeTree",
    "clean_relpath",
    "exceeds_ratio",
    "quote",
    "refuse",
]
