"""Walking a received tree and hashing its files with BLAKE3.

The walk uses ``os.scandir`` and never follows symlinks (they are reported as skipped,
not hashed). Files are hashed in a thread pool: BLAKE3 releases the GIL while it
hashes, so small files hash in parallel; big files are memory-mapped and hashed with
BLAKE3's own threads.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

BIG_FILE_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
BATCH_FILES = 128
EXCLUDED_DIRS: frozenset[str] = frozenset({".git"})


@dataclass(frozen=True)
class HashedFile:
    path: str  # relative, "/"-separated; undecodable bytes kept as surrogate escapes
    size: int
    hash: str  # BLAKE3 hex


@dataclass(frozen=True)
class TreeDigest:
    files: tuple[HashedFile, ...]  # sorted by path bytes
    skipped: tuple[str, ...]       # symlinks and special files, not hashed
    total_bytes: int
    tree_hash: str


def iter_regular_files(root: Path, exclude_dirs: Collection[str] = EXCLUDED_DIRS) -> Iterator[tuple[str, bool]]:
    """Yield ``(relative_path, is_regular_file)`` for every non-directory entry under ``root``.

    Directories named in ``exclude_dirs`` are not entered; symlinks are never followed.
    """
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        with os.scandir(abs_dir) as it:
            for entry in it:
                rel = f"{rel_dir}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in exclude_dirs:
                        stack.append((entry.path, rel + "/"))
                else:
                    yield rel, entry.is_file(follow_symlinks=False)


def hash_file(path: str) -> tuple[int, str]:
    """``(size, blake3 hex)`` of one regular file, refusing to follow a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if st.st_size >= BIG_FILE_BYTES:
            hasher = blake3(max_threads=blake3.AUTO)
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                hasher.update(mm)
            return st.st_size, hasher.hexdigest()
        # Small file: one read of size+1 bytes normally returns it all and proves EOF.
        want = st.st_size + 1
        data = os.read(fd, want)
        if len(data) < want:
            return len(data), blake3(data).hexdigest()
        hasher = blake3(data)  # the file grew since fstat: hash whatever is there now
        size = len(data)
        while chunk := os.read(fd, CHUNK_BYTES):
            hasher.update(chunk)
            size += len(chunk)
        return size, hasher.hexdigest()
    finally:
        os.close(fd)


def _path_bytes(rel: str) -> bytes:
    return rel.encode("utf-8", "surrogateescape")


def tree_hash(pairs: list[tuple[str, str]]) -> str:
    """Deterministic digest of ``(path, hash)`` pairs (order-independent: they are sorted)."""
    hasher = blake3()
    for rel, digest in sorted(pairs, key=lambda p: _path_bytes(p[0])):
        hasher.update(_path_bytes(rel) + b"\0" + digest.encode("ascii") + b"\n")
    return hasher.hexdigest()


def digest_tree(root: Path, *, max_workers: int | None = None,
                exclude_dirs: Collection[str] = EXCLUDED_DIRS) -> TreeDigest:
    """Hash every regular file under ``root`` in parallel."""
    regular: list[str] = []
    skipped: list[str] = []
    for rel, is_file in iter_regular_files(root, exclude_dirs):
        (regular if is_file else skipped).append(rel)
    regular.sort(key=_path_bytes)
    base = os.fspath(root)
    paths = [os.path.join(base, rel) for rel in regular]
    results: list[tuple[int, str]] = [(0, "")] * len(paths)

    def hash_batch(batch: range) -> None:
        for i in batch:
            results[i] = hash_file(paths[i])

    # Small files in batches (one future per file costs more than hashing it); BLAKE3 and
    # file reads release the GIL, so batches overlap. Big files use BLAKE3's own threads.
    workers = max_workers or min(8, os.cpu_count() or 2)
    batches = [range(i, min(i + BATCH_FILES, len(paths))) for i in range(0, len(paths), BATCH_FILES)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-hash") as pool:
        for future in [pool.submit(hash_batch, b) for b in batches]:
            future.result()
    files = tuple(HashedFile(rel, size, digest) for rel, (size, digest) in zip(regular, results))
    return TreeDigest(files=files, skipped=tuple(sorted(skipped, key=_path_bytes)),
                      total_bytes=sum(f.size for f in files),
                      tree_hash=tree_hash([(f.path, f.hash) for f in files]))
