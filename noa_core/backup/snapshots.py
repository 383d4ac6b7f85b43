"""Backing up a directory tree as one snapshot (restoring one: :mod:`noa_core.backup.restore`).

Chunking: files are cut into fixed-size 1 MiB chunks, not content-defined ones.
restic's CDC (Rabin, 512 KiB-8 MiB) means any file below 512 KiB is one blob in restic
too; on code workspaces (median file a few KiB) de-duplication is whole-file, which
fixed chunks give exactly. CDC only wins on large files edited in the middle, and a
byte-wise rolling hash in pure Python runs at a few MB/s, far below the hashing
and compression speed here; fixed chunks keep the backup as fast as restic's.

Unchanged files (same size, mtime_ns, ctime_ns and inode as in the parent snapshot,
and not racily modified around the parent's start time) are not read again: their
chunk list is reused, like restic's parent-snapshot scan and git's index.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from noa_core.backup.interface import BackupBadInput, BackupError
from noa_core.backup.pack_writer import PackWriter
from noa_core.backup.repository import Index, Repository, Snapshot
from noa_core.backup.tree_entry import CHUNKS, CTIME, INO, MTIME, SIZE, K, P, Progress

RACY_NS = 2_000_000_000
WINDOW = 256                      # files read ahead of the pack writer
MAX_INFLIGHT = 64 * 1024 * 1024   # bytes read ahead (bounds memory with big files)


@dataclass(frozen=True)
class BackupResult:
    snapshot: Snapshot
    files: int
    dirs: int
    bytes: int
    files_reused: int
    blobs_new: int
    bytes_new_raw: int
    bytes_stored: int
    packs_new: int
    packs_recovered: int
    skipped: tuple[str, ...]
    seconds: float

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("files", "dirs", "bytes", "files_reused", "blobs_new",
                                           "bytes_new_raw", "bytes_stored", "packs_new", "packs_recovered",
                                           "seconds")}
        d["skipped"] = list(self.skipped)
        d["snapshot"] = self.snapshot.to_json()
        return d


def _walk(root: str, exclude: frozenset[str], errors: list[str]) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) for everything under root, sorted, depth first.

    Directories that cannot be listed and entries that vanish are reported in ``errors``.
    """
    stack: list[tuple[str, str]] = [(root, "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            errors.append(f"{rel_dir or '.'}: {exc.strerror or exc}")
            continue
        subdirs = []
        for e in entries:
            if e.path in exclude:
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append(f"{rel_dir}{e.name}: {exc.strerror or exc}")
                continue
            rel = rel_dir + e.name
            yield rel, e.path, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((e.path, rel + "/"))
        stack.extend(reversed(subdirs))


def _chunk_job(repo: Repository, path: str, offset: int, length: int, known: set[str]) -> list[tuple]:
    """Read ``length`` bytes at ``offset``; return [(blob id, sealed or None, raw length)] per chunk."""
    out = []
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        data = os.pread(fd, length, offset) if length else b""
    finally:
        os.close(fd)
    view = memoryview(data)
    step = repo.chunk_bytes
    for start in range(0, len(data), step):
        piece = view[start:start + step]
        blob = repo.keys.blob_id(piece)
        if blob in known:
            out.append((blob, None, len(piece)))
        else:
            out.append(repo.seal_blob(piece) + (len(piece),))
    return out


def backup(repo: Repository, source: Path, *, tags: tuple[str, ...] = (),
           extra: dict | Callable[[], dict] | None = None,
           exclude: tuple[Path, ...] = (), progress: Progress | None = None, workers: int | None = None,
           force_read: bool = False) -> BackupResult:
    """Back up ``source`` into a new snapshot; the manifest is the last object written.

    ``extra`` (or a callable returning it, evaluated just before the manifest is written)
    may carry ``{"cltree": {...}}``, the CL tree head stored in the snapshot.
    """
    t0 = time.perf_counter()
    root = os.path.realpath(source)
    if not os.path.isdir(root):
        raise BackupBadInput(f"{source} is not a directory")
    start_ns = time.time_ns()
    host = socket.gethostname()
    excl = frozenset(os.path.realpath(p) for p in exclude)
    with repo.lock(exclusive=False) as lock:
        index = repo.load_index()
        recovered = _recover_unindexed(repo, index)
        parent = _parent(repo, root, host)
        prev: dict[str, list] = {}
        parent_start = 0
        if parent is not None and not force_read:
            try:
                prev = {e[P]: e for e in repo.load_tree(index, parent) if e[K] == "f"}
                parent_start = int(parent.stats.get("start_ns", parent.time_ns))
            except BackupError:
                prev = {}
        known: set[str] = set(index.blobs)
        writer = PackWriter(repo)
        entries: list[list[Any]] = []
        skipped: list[str] = []
        counters = {"files": 0, "dirs": 0, "bytes": 0, "reused": 0, "blobs_new": 0, "raw_new": 0}
        pending: deque[tuple[list[Any], list[Future]]] = deque()
        nworkers = workers or min(4, (os.cpu_count() or 1) + 1)
        last_report = time.monotonic()

        inflight = [0]

        def consume(entry: list[Any], fut: Future) -> int | None:
            """Store one read span's new blobs; the bytes read, or None if the file vanished."""
            try:
                chunks = fut.result()
            except OSError as exc:  # vanished or unreadable since the walk: not in this snapshot
                entry[K] = "x"
                skipped.append(f"{entry[P]}: {exc.strerror or exc}")
                return None
            read = 0
            for blob, sealed, raw in chunks:
                read += raw
                entry[CHUNKS].append(blob)
                if blob not in known and sealed is not None:  # None: already known when hashed
                    known.add(blob)
                    writer.add(blob, sealed, raw)
                    counters["blobs_new"] += 1
                    counters["raw_new"] += raw
            return read

        def big_file(pool: ThreadPoolExecutor, entry: list[Any], path: str, size: int, span: int) -> None:
            """A file larger than the read-ahead budget: stream it with a small window of spans."""
            window: deque[Future] = deque()
            read = 0
            for off in range(0, size, span):
                window.append(pool.submit(_chunk_job, repo, path, off, min(span, size - off), known))
                if len(window) >= 2 * nworkers:
                    got = consume(entry, window.popleft())
                    if got is None:
                        break
                    read += got
            while window and entry[K] != "x":
                got = consume(entry, window.popleft())
                read += got or 0
            for fut in window:
                fut.cancel()
            entry[SIZE] = read

        def drain(limit: int) -> None:
            nonlocal last_report
            while pending and (len(pending) > limit or inflight[0] > MAX_INFLIGHT or pending[0][1][-1].done()):
                entry, futs = pending.popleft()
                inflight[0] -= entry[SIZE]
                read = 0
                for fut in futs:
                    got = consume(entry, fut)
                    if got is None:
                        break
                    read += got
                entry[SIZE] = read  # what was read is what restore writes (a file may shrink meanwhile)
                lock.refresh()
                if progress and time.monotonic() - last_report > 0.5:
                    last_report = time.monotonic()
                    progress("backup", {"files": counters["files"], "bytes": counters["bytes"],
                                        "stored": writer.stored_bytes})

        try:
            with ThreadPoolExecutor(max_workers=nworkers, thread_name_prefix="noa-backup") as pool:
                for rel, abspath, st in _walk(root, excl, skipped):
                    mode = st.st_mode
                    if stat.S_ISDIR(mode):
                        counters["dirs"] += 1
                        entries.append([rel, "d", stat.S_IMODE(mode), st.st_mtime_ns, 0, [], 0, 0, None])
                    elif stat.S_ISLNK(mode):
                        try:
                            target = os.readlink(abspath)
                        except OSError as exc:
                            skipped.append(f"{rel}: {exc.strerror or exc}")
                            continue
                        entries.append([rel, "l", stat.S_IMODE(mode), st.st_mtime_ns, 0, [], 0, 0, target])
                    elif stat.S_ISREG(mode):
                        counters["files"] += 1
                        counters["bytes"] += st.st_size
                        entry = [rel, "f", stat.S_IMODE(mode), st.st_mtime_ns, st.st_size, [], st.st_ino,
                                 st.st_ctime_ns, None]
                        entries.append(entry)
                        old = prev.get(rel)
                        if (old is not None and old[SIZE] == st.st_size and old[MTIME] == st.st_mtime_ns
                                and old[CTIME] == st.st_ctime_ns and old[INO] == st.st_ino
                                and st.st_mtime_ns < parent_start - RACY_NS
                                and all(c in known for c in old[CHUNKS])):
                            entry[CHUNKS] = list(old[CHUNKS])
                            counters["reused"] += 1
                            continue
                        size = st.st_size
                        if size == 0:
                            continue
                        span = repo.chunk_bytes * 8
                        if size > MAX_INFLIGHT:
                            drain(0)
                            big_file(pool, entry, abspath, size, span)
                            lock.refresh()
                            continue
                        futs = [pool.submit(_chunk_job, repo, abspath, off, min(span, size - off), known)
                                for off in range(0, size, span)]
                        pending.append((entry, futs))
                        inflight[0] += size
                        drain(WINDOW)
                    else:
                        skipped.append(rel)
                drain(0)
            entries = [e for e in entries if e[K] != "x"]
            tree_blob = {"v": 1, "root": root, "entries": entries}
            tree_plain = json.dumps(tree_blob, separators=(",", ":")).encode()
            tree_id, tree_sealed = repo.seal_blob(tree_plain)
            if tree_id not in known:
                writer.add(tree_id, tree_sealed, len(tree_plain))
            written = writer.finish()
        except BaseException:
            writer.abort()
            raise
        new_index = dict(written)
        new_index.update(recovered)
        if new_index:
            repo.write_index(new_index)
        stats = {"files": counters["files"], "dirs": counters["dirs"], "bytes": counters["bytes"],
                 "files_reused": counters["reused"], "blobs_new": counters["blobs_new"],
                 "bytes_new_raw": counters["raw_new"], "bytes_stored": writer.stored_bytes,
                 "packs_new": len(written), "start_ns": start_ns, "skipped": len(skipped)}
        extra_doc = (extra() if callable(extra) else extra) or {}
        now = datetime.now(UTC)
        snap = repo.save_snapshot({
            "time": now.isoformat(timespec="microseconds").replace("+00:00", "Z"), "time_ns": time.time_ns(),
            "hostname": host, "username": _user(), "paths": [root], "tree": tree_id,
            "parent": parent.id if parent else None, "tags": sorted(tags), "stats": stats,
            "cltree": extra_doc.get("cltree")})
    return BackupResult(snapshot=snap, files=counters["files"], dirs=counters["dirs"], bytes=counters["bytes"],
                        files_reused=counters["reused"], blobs_new=counters["blobs_new"],
                        bytes_new_raw=counters["raw_new"], bytes_stored=writer.stored_bytes,
                        packs_new=len(written), packs_recovered=len(recovered), skipped=tuple(skipped),
                        seconds=round(time.perf_counter() - t0, 3))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid())


def _parent(repo: Repository, root: str, host: str) -> Snapshot | None:
    same = [s for s in repo.snapshots() if s.paths == (root,) and s.hostname == host]
    return same[-1] if same else None


def _recover_unindexed(repo: Repository, index: Index) -> dict[str, list[list[Any]]]:
    """Index the packs a crashed backup uploaded, so their blobs are reused, not re-sent."""
    recovered: dict[str, list[list[Any]]] = {}
    for pack, size in repo.unindexed_packs(index).items():
        try:
            entries = repo.read_pack_header(pack, size)
        except BackupError:
            continue  # unreadable leftovers are prune's business
        index.add_pack(pack, entries)
        recovered[pack] = entries
    return recovered
