"""The SOT archive: one zstd-compressed copy of each duplicated content, ``NOA_HOME/archive/<blake3>``.

Content-addressed and written atomically (temporary file, fsync, rename). The input is
hashed while it is compressed: a file that changed since it was hashed is not archived
under the old hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from blake3 import blake3

CHUNK = 1024 * 1024
LEVEL = 3


class ContentChanged(Exception):
    """The file no longer has the content it was registered with."""


def archive_path(archive_dir: Path, digest: str) -> Path:
    return archive_dir / digest


def archive_file(archive_dir: Path, digest: str, source: Path) -> int:
    """Compress ``source`` into the archive under ``digest`` (once); returns the compressed size."""
    import zstandard

    target = archive_path(archive_dir, digest)
    if target.is_file():
        return target.stat().st_size
    archive_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{digest}.{os.getpid()}.tmp")
    hasher = blake3()
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as src, open(tmp, "wb") as out:
            with zstandard.ZstdCompressor(level=LEVEL).stream_writer(out, closefd=False) as writer:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    writer.write(chunk)
            out.flush()  # fsync: the caller syncs once for all the archive files of a scan
        if hasher.hexdigest() != digest:
            raise ContentChanged(f"{source}: changed since it was hashed")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target.stat().st_size


def read_archived(archive_dir: Path, digest: str) -> bytes:
    """The original bytes of an archived content (checked against its hash)."""
    import zstandard

    with archive_path(archive_dir, digest).open("rb") as fh:
        data = zstandard.ZstdDecompressor().stream_reader(fh).read()
    if blake3(data).hexdigest() != digest:
        raise ContentChanged(f"archive {digest}: content does not match its name")
    return data
