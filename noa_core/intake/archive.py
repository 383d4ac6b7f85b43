"""Checked extraction of tar and zip archives.

Neither ``extractall`` nor tarfile's extraction filters are used (Python 3.11.7's
``data`` filter has known bypasses).  Every member is checked here and written through
:class:`~noa_core.intake.guards.SafeTree`:

* names: no absolute paths, ``..``, drive letters, backslashes, NUL/control characters,
  ``.git`` components; depth and length limits; duplicate names refused;
* types: regular files and directories only.  **All links are refused** (symlinks and
  hard links, whatever their target), as are devices, FIFOs, sparse files and unknown
  member types;
* sizes: ``max_file_bytes``, ``max_total_bytes``, ``max_files`` on the bytes actually
  read, not on the declared sizes alone;
* compression ratio: zip members against their ``compress_size`` and the archive
  overall against its file size, before extraction.  Compressed tars have no per-member
  compressed size, so the whole decompressed stream (headers included) is counted as it
  is read and stopped once it passes ``max_compression_ratio`` x the archive's size (the
  first ``ratio_grace_bytes`` are always allowed).  tar metadata records (pax, GNU long
  names) are capped at 64 KiB before tarfile reads them into memory, and pax records
  are checked for well-formedness first (3.11.7's pax parser is quadratic on crafted
  input).

Files get mode 0o755 when the archive marks them executable, else 0o644.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake.guards import SafeTree, exceeds_ratio, quote

#: suffix -> format name; longest suffixes first.
ARCHIVE_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "tar.gz"),
    (".tar.bz2", "tar.bz2"),
    (".tar.xz", "tar.xz"),
    (".tgz", "tar.gz"),
    (".tbz2", "tar.bz2"),
    (".txz", "tar.xz"),
    (".tar", "tar"),
    (".zip", "zip"),
)

MAX_TAR_META_BYTES = 64 * 1024
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def archive_format(filename: str) -> str | None:
    """The archive format named by ``filename``'s suffix, or None."""
    low = filename.lower()
    for suffix, fmt in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return fmt
    return None


def archive_stem(filename: str) -> str:
    """``filename`` without its archive suffix."""
    low = filename.lower()
    for suffix, _fmt in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


@dataclass(frozen=True)
class ExtractResult:
    format: str
    archive_bytes: int
    members: int


def extract_archive(archive: Path, tree: SafeTree, limits: IngestLimits,
                    *, display_name: str | None = None) -> ExtractResult:
    """Extract ``archive`` into ``tree`` with every check listed in the module docstring."""
    label = display_name or archive.name
    fmt = archive_format(archive.name)
    if fmt is None:
        raise BadInput(f"refused archive {quote(label)}: unsupported archive type "
                       "(expected .tar.gz, .tgz, .tar, .tar.bz2, .tar.xz or .zip)")
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadInput(f"cannot open archive {quote(label)}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as raw:
        st = os.fstat(raw.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"refused archive {quote(label)}: not a regular file")
        size = st.st_size
        try:
            if fmt == "zip":
                members = _extract_zip(raw, size, label, tree, limits)
            else:
                members = _extract_tar(raw, size, fmt, label, tree, limits)
        except BadInput:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError,
                gzip.BadGzipFile, ValueError, NotImplementedError) as exc:
            detail = " ".join(str(exc).split()) or exc.__class__.__name__
            raise BadInput(f"refused archive {quote(label)}: not a valid {fmt} archive ({detail})") from None
        except OSError as exc:
            if exc.filename is None and exc.errno is None:  # decompressor complaints
                detail = " ".join(str(exc).split()) or exc.__class__.__name__
                raise BadInput(f"refused archive {quote(label)}: not a valid {fmt} archive ({detail})") from None
            raise
    return ExtractResult(format=fmt, archive_bytes=size, members=members)


# ----------------------------------------------------------------------------- tar
_LONG_DIGITS = re.compile(rb"[0-9]{33}")


def _check_pax_records(data: bytes, name: str) -> None:
    """Linear-time check that ``data`` is a well-formed list of pax records.

    Python 3.11.7 parses pax headers with regular expressions that take quadratic time
    on crafted input (CVE-2024-6232, fixed in 3.11.10).  Only well-formed records
    (``"<len> <keyword>=<value>\n"``, exact lengths, no digit run over 32) reach it, on
    which those expressions run in linear time.  GNU sparse keywords are refused.
    """
    def bad(rule: str) -> HostileInput:
        return HostileInput(f"refused archive member {quote(name)}: {rule}")

    if _LONG_DIGITS.search(data):
        raise bad("malformed pax header (digit run over 32)")
    pos, n = 0, len(data)
    while pos < n:
        space = data.find(b" ", pos, pos + 21)
        if space <= pos or not data[pos:space].isdigit():
            raise bad("malformed pax header record")
        end = pos + int(data[pos:space])
        if end <= space + 2 or end > n or data[end - 1] != 0x0A:
            raise bad("malformed pax header record length")
        eq = data.find(b"=", space + 1, end)
        if eq <= space + 1 or data.find(b"\n", space + 1, eq) != -1:
            raise bad("malformed pax header keyword")
        if data[space + 1:eq].startswith(b"GNU.sparse"):
            raise BadInput(f"refused archive member {quote(name)}: sparse files are not accepted")
        pos = end


class _Replay:
    """Gives tarfile back the bytes we already read, then reads on from ``inner``."""

    def __init__(self, data: bytes, inner: Any) -> None:
        self.data = data
        self.inner = inner

    def read(self, size: int = -1) -> bytes:
        if not self.data:
            return self.inner.read(size)
        if size is None or size < 0:
            out, self.data = self.data + self.inner.read(), b""
            return out
        out, self.data = self.data[:size], self.data[size:]
        if len(out) < size:
            out += self.inner.read(size - len(out))
        return out

    def tell(self) -> int:
        return self.inner.tell() - len(self.data)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


class _GuardedTarInfo(tarfile.TarInfo):
    """Checks pax / GNU long-name records before tarfile parses them.

    Records over 64 KiB are refused before they are buffered; pax records must pass
    :func:`_check_pax_records`.
    """

    def _check_meta(self) -> None:
        if self.size > MAX_TAR_META_BYTES:
            raise HostileInput(f"refused archive member {quote(self.name)}: tar metadata record of "
                               f"{self.size} bytes, over {MAX_TAR_META_BYTES}")

    def _proc_gnulong(self, tarfile: Any) -> Any:  # type: ignore[override]
        self._check_meta()
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]

    def _proc_pax(self, tarfile: Any) -> Any:  # type: ignore[override]
        self._check_meta()
        original = tarfile.fileobj
        buf = original.read(self._block(self.size))
        _check_pax_records(buf[: self.size], self.name)
        tarfile.fileobj = _Replay(buf, original)
        try:
            return super()._proc_pax(tarfile)  # type: ignore[misc]
        finally:
            tarfile.fileobj = original


class _RatioGuard:
    """File-like reader over a decompressed stream that stops a decompression bomb.

    Counts every decompressed byte (tar headers and padding included) and raises
    :class:`HostileInput` once the count passes the ratio allowance for an archive of
    ``compressed_size`` bytes.  Each read is capped so that at most one byte past the
    allowance is ever produced.
    """

    def __init__(self, inner: BinaryIO, compressed_size: int, label: str, limits: IngestLimits) -> None:
        self.inner = inner
        self.label = label
        self.limits = limits
        self.compressed_size = compressed_size
        self.allowance = int(max(limits.max_compression_ratio * compressed_size, limits.ratio_grace_bytes))
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        room = self.allowance - self.count + 1
        if size is None or size < 0 or size > room:
            size = room
        data = self.inner.read(size)
        self.count += len(data)
        if exceeds_ratio(self.count, self.compressed_size, self.limits):
            raise HostileInput(
                f"refused archive {quote(self.label)}: decompresses to more than "
                f"{self.limits.max_compression_ratio:g}x its {self.compressed_size} bytes "
                "(max_compression_ratio; decompression bomb?)")
        return data

    def close(self) -> None:
        self.inner.close()


def _decompressor(raw: BinaryIO, fmt: str) -> BinaryIO:
    if fmt == "tar.gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if fmt == "tar.bz2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if fmt == "tar.xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    return raw


def _extract_tar(raw: BinaryIO, size: int, fmt: str, label: str, tree: SafeTree,
                 limits: IngestLimits) -> int:
    stream: Any = _decompressor(raw, fmt)
    if fmt != "tar":
        stream = _RatioGuard(stream, size, label, limits)
    count = 0
    # Stream mode ("r|"): members are read strictly in order, never seeking back.
    with tarfile.open(fileobj=stream, mode="r|", tarinfo=_GuardedTarInfo) as tf:
        for member in tf:
            count += 1
            name = member.name
            if member.issym() or member.islnk():
                kind = "symlink" if member.issym() else "hard link"
                raise tree.refuse(HostileInput, name,
                                  f"links are not accepted in archives ({kind} to {quote(member.linkname)})")
            if member.ischr() or member.isblk() or member.isfifo():
                kind = "character device" if member.ischr() else "block device" if member.isblk() else "FIFO"
                raise tree.refuse(HostileInput, name, f"{kind} members are not accepted")
            if member.issparse():
                raise tree.refuse(BadInput, name, "sparse files are not accepted")
            parts = tree.clean(name)
            if member.isdir():
                tree.make_dir(parts, name)
                continue
            if not member.isreg() or member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                raise tree.refuse(BadInput, name, f"unsupported tar member type {member.type!r}")
            if member.size < 0:
                raise tree.refuse(HostileInput, name, "negative size")
            tree.check_file_size(name, member.size)
            fobj = tf.extractfile(member)
            if fobj is None:  # pragma: no cover - isreg() members always have data
                raise tree.refuse(BadInput, name, "member has no data")
            with fobj:
                written = tree.write_file(parts, name, fobj.read, executable=bool(member.mode & 0o111),
                                          declared_size=None)
            if written != member.size:
                raise tree.refuse(BadInput, name, "truncated member data")
    return count


# ----------------------------------------------------------------------------- zip
def _zip_unix_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(raw: BinaryIO, size: int, label: str, tree: SafeTree, limits: IngestLimits) -> int:
    with zipfile.ZipFile(raw) as zf:
        infos = zf.infolist()
        files = [i for i in infos if not i.is_dir()]
        if len(files) > limits.max_files:
            culprit = files[limits.max_files].filename
            raise tree.refuse(LimitExceeded, culprit, f"drop has more than max_files {limits.max_files} files")
        # Check the whole central directory before writing anything.
        declared_total = 0
        for info in infos:
            name = info.filename
            mode = _zip_unix_mode(info)
            ftype = stat.S_IFMT(mode)
            if ftype == stat.S_IFLNK:
                raise tree.refuse(HostileInput, name, "links are not accepted in archives (symlink)")
            if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
                raise tree.refuse(HostileInput, name, "special file (device, FIFO or socket) is not accepted")
            tree.clean(name)
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise tree.refuse(BadInput, name, "encrypted members are not supported")
            if info.compress_type not in _ZIP_METHODS:
                raise tree.refuse(BadInput, name, f"unsupported compression method {info.compress_type}")
            if exceeds_ratio(info.file_size, info.compress_size, limits):
                raise tree.refuse(
                    HostileInput, name,
                    f"compression ratio {info.file_size / max(info.compress_size, 1):.0f} is over "
                    f"max_compression_ratio {limits.max_compression_ratio:g} (zip bomb?)")
            if info.file_size > limits.max_file_bytes:
                raise tree.refuse(LimitExceeded, name,
                                  f"file is {info.file_size} bytes, over max_file_bytes {limits.max_file_bytes}")
            declared_total += info.file_size
            if declared_total > limits.max_total_bytes:
                raise tree.refuse(LimitExceeded, name,
                                  f"drop would exceed max_total_bytes {limits.max_total_bytes}")
        if exceeds_ratio(declared_total, size, limits):
            raise HostileInput(
                f"refused archive {quote(label)}: expands to {declared_total} bytes, over "
                f"max_compression_ratio {limits.max_compression_ratio:g} x its {size} bytes (zip bomb?)")
        # Overlapping entries (several names sharing one compressed body) are a bomb trick.
        spans = sorted((i.header_offset, i.compress_size, i.filename) for i in files)
        for (off_a, csize_a, name_a), (off_b, _c, name_b) in zip(spans, spans[1:]):
            if off_b < off_a + csize_a or off_b == off_a:
                raise tree.refuse(HostileInput, name_b, f"overlaps member {quote(name_a)} (zip bomb?)")
        for info in infos:
            name = info.filename
            parts = tree.clean(name)
            if info.is_dir():
                tree.make_dir(parts, name)
                continue
            with zf.open(info) as fobj:
                written = tree.write_file(parts, name, fobj.read,
                                          executable=bool(_zip_unix_mode(info) & 0o111),
                                          declared_size=info.file_size)
            if written != info.file_size:
                raise tree.refuse(BadInput, name, "member data does not match its declared size")
        return len(infos)


__all__ = ["ARCHIVE_SUFFIXES", "ExtractResult", "archive_format", "archive_stem", "extract_archive"]
