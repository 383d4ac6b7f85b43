"""What counts as an item in the drop-in folder, and the facts the watcher needs about one.

* :func:`is_ignored` / :func:`temp_base`: dotfiles and download leftovers (``*.part``,
  ``*.tmp``, ``*.crdownload``, ...) are not items until they are renamed;
* :func:`classify`: a directory, an archive, a source file (``*.url``, ``*.txt``,
  ``*.source`` holding one git URL, ``pypi:NAME==VERSION`` or absolute path), or
  something NOA cannot take;
* :func:`signature`: what must stop changing before an item is taken (size and mtime; for
  a directory the recursive file count, total size and newest mtime);
* :func:`content_key`: the item's identity, a hash of its kind and content (names inside a
  directory included, the item's own name not), so the same content is one item however
  it is named and however often the watcher restarts;
* :func:`archive_looks_complete`: a cheap end-of-archive check, so an archive whose
  writer stalled longer than the settle interval is not taken half-written;
* :func:`read_source_file`: the one source named in a ``*.url`` file.

Nothing here follows symlinks or opens anything but regular files.
"""

from __future__ import annotations

import bz2
import lzma
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from noa_core.errors import BadInput
from noa_core.intake.archive import archive_format
from noa_core.intake.guards import quote

ItemKind = Literal["dir", "archive", "source-file", "unsupported"]

#: names the watcher keeps for itself at the top of the drop-in folder
RESERVED_NAMES = frozenset({"processed", "failed", "quarantine"})
#: suffixes of files still being written by a browser, a download tool or a copy script
TEMP_SUFFIXES: tuple[str, ...] = (".part", ".tmp", ".crdownload", ".partial", ".download", ".filepart", ".!qb")
#: suffixes of text files holding one source (git URL, pypi:NAME==VERSION, absolute path)
SOURCE_FILE_SUFFIXES: tuple[str, ...] = (".url", ".txt", ".source")
MAX_SOURCE_FILE_BYTES = 16 * 1024
_CHUNK = 1024 * 1024


def is_ignored(name: str) -> bool:
    """Dotfiles and files still being written are not items (yet)."""
    low = name.lower()
    return name.startswith(".") or low.endswith(TEMP_SUFFIXES) or name.endswith("~")


def temp_base(name: str) -> str | None:
    """The final name a temporary name stands for, if it looks like one.

    ``.proj.tar.gz`` -> ``proj.tar.gz``; ``proj.tar.gz.part`` -> ``proj.tar.gz``;
    ``.proj.tar.gz.Ab12Cd`` (rsync) -> ``proj.tar.gz.Ab12Cd`` (matched by prefix, see
    :func:`is_temp_of`).
    """
    base = name
    low = base.lower()
    for suffix in TEMP_SUFFIXES:
        if low.endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = base.removeprefix(".")
    return base if base and base != name else None


def is_temp_of(temp: str, final: str) -> bool:
    """True if ``temp`` looks like a name ``final`` was written under before a rename."""
    base = temp_base(temp)
    if base is None:
        return False
    if base == final:
        return True
    # rsync writes ".NAME.XXXXXX" and renames it to NAME
    return temp.startswith("." + final + ".") and len(temp) - len(final) - 2 <= 8


def classify(path: Path) -> tuple[ItemKind, str]:
    """The item's kind and, for ``unsupported``, why."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return "unsupported", f"cannot read {quote(path.name)}: {exc.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return "unsupported", (f"{quote(path.name)} is a symlink; the drop-in folder takes only real files "
                               "and directories (copy the item in, or use `noa drop`)")
    if stat.S_ISDIR(st.st_mode):
        return "dir", ""
    if not stat.S_ISREG(st.st_mode):
        return "unsupported", f"{quote(path.name)} is not a regular file or directory"
    if archive_format(path.name) is not None:
        return "archive", ""
    if path.name.lower().endswith(SOURCE_FILE_SUFFIXES):
        return "source-file", ""
    return "unsupported", (f"{quote(path.name)} is not a directory, an archive (.tar.gz, .tgz, .tar, .tar.bz2, "
                           ".tar.xz, .zip) or a source file (.url, .txt, .source holding one git URL or "
                           "pypi:NAME==VERSION)")


# ------------------------------------------------------------------ signatures
@dataclass(frozen=True)
class Signature:
    """What must stay the same for the settle interval before an item is taken."""

    files: int
    size: int
    mtime_ns: int
    inode: int

    @property
    def empty(self) -> bool:
        return self.files == 0


def signature(path: Path, max_entries: int = 1_000_000) -> Signature | None:
    """Size and mtime of a file; count, total size and newest mtime under a directory.

    None when the item vanished.  Directory mtimes count too (an entry added or removed
    changes its directory's mtime).  Symlinks are not followed.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return Signature(1, st.st_size, st.st_mtime_ns, st.st_ino)
    files, size, newest, seen = 0, 0, st.st_mtime_ns, 0
    stack = [str(path)]
    while stack and seen < max_entries:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    seen += 1
                    try:
                        est = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    newest = max(newest, est.st_mtime_ns)
                    if stat.S_ISDIR(est.st_mode):
                        stack.append(entry.path)
                    else:
                        files += 1
                        size += est.st_size
        except OSError:
            continue
    return Signature(files, size, newest, st.st_ino)


# ------------------------------------------------------------------ content keys
def _hasher():  # type: ignore[no-untyped-def]
    try:
        from blake3 import blake3

        return blake3(max_threads=blake3.AUTO)
    except ImportError:  # pragma: no cover - blake3 is a dependency
        import hashlib

        return hashlib.blake2b(digest_size=32)


def _hash_regular_file(h, path: str) -> None:  # type: ignore[no-untyped-def]
    """Feed a regular file's bytes; never opens a FIFO or device, never follows a link."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        h.update(f"<unreadable {exc.errno}>".encode())
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            h.update(b"<not a regular file>")
            return
        h.update(st.st_size.to_bytes(8, "little"))
        while True:
            block = os.read(fd, _CHUNK)
            if not block:
                break
            h.update(block)
    finally:
        os.close(fd)


def content_key(path: Path, kind: ItemKind, max_entries: int = 1_000_000) -> str:
    """A 128-bit hex key over the item's kind and content.

    Directories: every entry's relative path (sorted), type, executable bit and content
    (a symlink's target text, never what it points at).  The item's own name is not part
    of the key.  Unreadable files and directories hash as a marker, so the key is always
    defined and the code drop itself says what is wrong.
    """
    h = _hasher()
    h.update(b"noa-drop-in/1\0" + kind.encode() + b"\0")
    try:
        st = os.lstat(path)
    except OSError as exc:
        h.update(f"<missing {exc.errno}>".encode())
        return h.hexdigest()[:32]
    if stat.S_ISLNK(st.st_mode):
        h.update(b"L" + os.fsencode(os.readlink(path)))
    elif stat.S_ISREG(st.st_mode):
        _hash_regular_file(h, str(path))
    elif stat.S_ISDIR(st.st_mode):
        _hash_tree(h, str(path), max_entries)
    else:
        h.update(f"<special {stat.S_IFMT(st.st_mode)} {path.name}>".encode())
    return h.hexdigest()[:32]


def _hash_tree(h, root: str, max_entries: int) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    stack = [""]
    while stack:
        rel = stack.pop()
        here = os.path.join(root, rel) if rel else root
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            h.update(b"D" + os.fsencode(rel) + f"<unreadable {exc.errno}>".encode() + b"\0")
            continue
        subdirs = []
        for entry in entries:
            seen += 1
            if seen > max_entries:
                h.update(b"<truncated>")
                return
            name = os.path.join(rel, entry.name) if rel else entry.name
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                h.update(b"?" + os.fsencode(name) + b"\0")
                continue
            if stat.S_ISDIR(est.st_mode):
                h.update(b"d" + os.fsencode(name) + b"\0")
                subdirs.append(name)
            elif stat.S_ISLNK(est.st_mode):
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    target = ""
                h.update(b"l" + os.fsencode(name) + b"\0" + os.fsencode(target) + b"\0")
            elif stat.S_ISREG(est.st_mode):
                h.update((b"x" if est.st_mode & 0o111 else b"f") + os.fsencode(name) + b"\0")
                _hash_regular_file(h, entry.path)
            else:
                h.update(b"s" + os.fsencode(name) + b"\0")
        # depth-first in sorted order: push reversed so the smallest name is walked first
        stack.extend(reversed(subdirs))


# ------------------------------------------------------------------ archive completeness
def archive_looks_complete(path: Path, max_output_bytes: int = 4 * 1024 * 1024 * 1024) -> bool:
    """False when ``path`` is visibly cut short (its end-of-archive marker is missing).

    zip: the end-of-central-directory record is present.  gzip/bz2/xz: the compressed
    stream reaches its end marker exactly at the end of the file (decompressed output is
    thrown away; past ``max_output_bytes`` the archive counts as complete and the ingest
    limits decide).  Plain tar: the size is a multiple of 512 and ends in zero blocks.
    Anything unreadable counts as complete: the code drop says what is wrong with it.
    """
    fmt = archive_format(path.name)
    try:
        if fmt == "zip":
            return zipfile.is_zipfile(path)
        if fmt == "tar":
            return _tar_complete(path)
        if fmt in ("tar.gz", "tar.bz2", "tar.xz"):
            return _stream_complete(path, fmt, max_output_bytes)
    except OSError:
        return True
    return True


def _tar_complete(path: Path) -> bool:
    size = path.stat().st_size
    if size < 1024 or size % 512:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1024)
        return fh.read(1024) == b"\0" * 1024


def _new_decompressor(fmt: str):  # type: ignore[no-untyped-def]
    if fmt == "tar.gz":
        return zlib.decompressobj(wbits=31)
    if fmt == "tar.bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


def _stream_complete(path: Path, fmt: str, max_output_bytes: int) -> bool:
    if path.stat().st_size == 0:
        return False
    out = 0
    d = _new_decompressor(fmt)
    fed = False
    with open(path, "rb") as fh:
        buf = b""
        while True:
            if not buf:
                buf = fh.read(_CHUNK)
                if not buf:
                    # the file ended: complete only if the last member reached its end marker
                    return bool(d.eof) or not fed
            try:
                if fmt == "tar.gz":
                    out += len(d.decompress(buf, _CHUNK))
                    buf = d.unconsumed_tail
                else:
                    out += len(d.decompress(buf, _CHUNK))
                    buf = b""
                    while not d.eof and not d.needs_input and out <= max_output_bytes:
                        out += len(d.decompress(b"", _CHUNK))
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
                return True  # corrupt rather than short: the code drop refuses it with a reason
            fed = True
            if out > max_output_bytes:
                return True
            if d.eof:
                rest = d.unused_data + buf
                if rest.strip(b"\0"):
                    d, fed, buf = _new_decompressor(fmt), False, rest  # another member follows
                else:
                    d, fed, buf = _new_decompressor(fmt), False, b""  # zero padding


# ------------------------------------------------------------------ source files
def read_source_file(path: Path) -> str:
    """The one source named in a ``*.url``/``*.txt``/``*.source`` file.

    Blank lines and ``#`` comments are skipped (a comment is also how the same URL is
    dropped again as a new item).  Exactly one source line is allowed; a local path must
    be absolute.  :class:`BadInput` otherwise.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise BadInput(f"cannot read source file {quote(path.name)}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_SOURCE_FILE_BYTES + 1)
    if len(data) > MAX_SOURCE_FILE_BYTES:
        raise BadInput(f"refused source file {quote(path.name)}: larger than {MAX_SOURCE_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"refused source file {quote(path.name)}: not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines()]
    sources = [line for line in lines if line and not line.startswith("#")]
    if not sources:
        raise BadInput(f"refused source file {quote(path.name)}: no source in it "
                       "(write one git URL, pypi:NAME==VERSION or absolute path)")
    if len(sources) > 1:
        raise BadInput(f"refused source file {quote(path.name)}: {len(sources)} sources in it; "
                       "write one source per file")
    source = sources[0]
    low = source.lower()
    if not (low.startswith("pypi:") or "://" in source or os.path.isabs(os.path.expanduser(source))):
        raise BadInput(f"refused source file {quote(path.name)}: {quote(source)} is neither a URL, "
                       "pypi:NAME==VERSION nor an absolute path")
    return source


__all__ = [
    "RESERVED_NAMES",
    "SOURCE_FILE_SUFFIXES",
    "TEMP_SUFFIXES",
    "ItemKind",
    "Signature",
    "archive_looks_complete",
    "classify",
    "content_key",
    "is_ignored",
    "is_temp_of",
    "read_source_file",
    "signature",
    "temp_base",
]
