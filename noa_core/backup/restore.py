"""Restoring a snapshot into a directory: same bytes, permissions and mtimes; paths that
would leave the target or pass through a restored symlink are refused."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from noa_core.backup.interface import BackupBadInput, BackupError
from noa_core.backup.repository import Repository, pack_key
from noa_core.backup.tree_entry import CHUNKS, LINK, MODE, MTIME, SIZE, K, P, Progress

__all__ = ["RestoreResult", "restore"]


@dataclass(frozen=True)
class RestoreResult:
    snapshot: str
    target: str
    files: int
    dirs: int
    symlinks: int
    bytes: int
    seconds: float

    def to_json(self) -> dict:
        return dict(self.__dict__)


def restore(repo: Repository, snapshot_ref: str, target: Path, *, overwrite: bool = False,
            progress: Progress | None = None, workers: int = 3) -> RestoreResult:
    """Restore a snapshot into ``target``: same bytes, permissions and mtimes."""
    t0 = time.perf_counter()
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise BackupBadInput(f"restore target {target} is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise BackupBadInput(f"restore target {target} is not empty (pass overwrite to restore over it)")
    with repo.lock(exclusive=False):
        snap = repo.find_snapshot(snapshot_ref)
        index = repo.load_index()
        entries = repo.load_tree(index, snap)
        base = os.path.realpath(target)
        os.makedirs(base, exist_ok=True)
        jobs: dict[str, list[tuple[str, int, str]]] = {}  # pack -> [(blob, file offset, path)]
        files = dirs = links = 0
        total = 0
        made_links: set[str] = set()
        for e in entries:
            rel = e[P]
            parts = rel.split("/")
            if not rel or rel.startswith("/") or ".." in parts or "" in parts or "." in parts:
                raise BackupError(f"snapshot {snap.id[:12]} holds an unsafe path {rel!r}")
            if made_links and any("/".join(parts[:i]) in made_links for i in range(1, len(parts))):
                raise BackupError(f"snapshot {snap.id[:12]} writes {rel!r} through a symlink it restored")
            if e[K] == "l":
                made_links.add(rel)
            path = os.path.join(base, rel)
            kind = e[K]
            if kind == "d":
                dirs += 1
                if os.path.lexists(path) and not os.path.isdir(path):
                    os.unlink(path)
                os.makedirs(path, mode=0o700, exist_ok=True)
            elif kind == "l":
                links += 1
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(e[LINK], path)
            else:
                files += 1
                total += e[SIZE]
                if os.path.lexists(path):
                    os.unlink(path)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                off = 0
                for blob in e[CHUNKS]:
                    ref = index.blobs.get(blob)
                    if ref is None:
                        raise BackupError(f"blob {blob} of {rel} is missing from the repository (run verify)")
                    jobs.setdefault(ref.pack, []).append((blob, off, path))
                    off += ref.raw_length
        done = {"bytes": 0}
        last = [time.monotonic()]

        def restore_pack(pack: str, wants: list[tuple[str, int, str]]) -> int:
            refs = {b: index.blobs[b] for b, _o, _p in wants}
            lo = min(r.offset for r in refs.values())
            hi = max(r.offset + r.length for r in refs.values())
            data = memoryview(repo.backend.get(pack_key(pack), lo, hi - lo))
            plain: dict[str, bytes] = {}
            written = 0
            for blob, off, path in wants:
                chunk = plain.get(blob)
                if chunk is None:
                    r = refs[blob]
                    chunk = plain[blob] = repo.unseal_blob(blob, data[r.offset - lo:r.offset - lo + r.length])
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.pwrite(fd, chunk, off)
                finally:
                    os.close(fd)
                written += len(chunk)
            return written

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-restore") as pool:
            futs = [pool.submit(restore_pack, pack, wants) for pack, wants in jobs.items()]
            for fut in futs:
                done["bytes"] += fut.result()
                if progress and time.monotonic() - last[0] > 0.5:
                    last[0] = time.monotonic()
                    progress("restore", {"bytes": done["bytes"], "total": total})
        for e in entries:  # files and links first, then directories deepest first
            path = os.path.join(base, e[P])
            if e[K] == "f":
                os.chmod(path, e[MODE])
                os.utime(path, ns=(e[MTIME], e[MTIME]))
            elif e[K] == "l":
                os.utime(path, ns=(e[MTIME], e[MTIME]), follow_symlinks=False)
        for e in sorted((e for e in entries if e[K] == "d"), key=lambda e: e[P].count("/"), reverse=True):
            path = os.path.join(base, e[P])
            os.chmod(path, e[MODE])
            os.utime(path, ns=(e[MTIME], e[MTIME]))
    return RestoreResult(snapshot=snap.id, target=base, files=files, dirs=dirs, symlinks=links, bytes=total,
                         seconds=round(time.perf_counter() - t0, 3))
