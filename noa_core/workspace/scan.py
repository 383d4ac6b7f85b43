"""``scan``: the workspace flow for one tree, incremental like git's index.

file change -> stat check (size, mtime_ns, ctime_ns, inode; unchanged and not racy:
not read) -> BLAKE3 in parallel -> SOT check (duplicate: zstd into the archive,
registered as pointing at its source; unique: its own source) -> registry + version
history -> CL tree entry.

An unchanged tree costs a directory walk, one ``lstat`` per file and loading the index
file: the database (and SQLAlchemy) is not touched and nothing is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noa_core.errors import BadInput
from noa_core.storage.hashing import hash_file
from noa_core.workspace.changes import Seen
from noa_core.workspace.index import Index, load_index, save_index

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

EXCLUDED_DIRS: frozenset[str] = frozenset({".git", ".hg", ".svn"})
BATCH_FILES = 64
RACY_MARGIN_NS = 50_000_000  # a rebuilt index trusts nothing modified within 50 ms of the last scan


@dataclass(frozen=True)
class ScanReport:
    root: str
    files: int
    bytes: int
    added: int
    modified: int
    deleted: int
    touched: int            # stat data changed, content the same
    unchanged: int          # not read at all
    hashed_files: int
    hashed_bytes: int
    hash_seconds: float
    racy: int               # re-hashed because their mtime was not older than the index
    skipped: tuple[str, ...]  # symlinks, special files, unreadable files
    duplicate_files: int
    duplicate_bytes: int
    archived_blobs: int
    archive_bytes: int
    saved_bytes: int
    new_duplicates: int
    database_written: bool
    cltree_entry: str | None
    seconds: float
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["skipped"] = list(self.skipped)
        doc["errors"] = list(self.errors)
        doc["hash_mib_per_s"] = round(self.hashed_bytes / 1048576 / self.hash_seconds, 1) if self.hash_seconds else None
        return doc


def index_dir(settings: NoaSettings) -> Path:
    return settings.layout().root / "workspace" / "index"


def walk(root: Path, exclude: Collection[str] = EXCLUDED_DIRS,
         skip_dirs: Collection[str] = ()) -> tuple[dict[str, tuple[int, int, int, int]], list[str]]:
    """``{relative path: (size, mtime_ns, ctime_ns, inode)}`` of regular files, and the skipped entries.

    Symlinks are never followed (reported as skipped); ``skip_dirs`` are absolute paths
    not to enter (NOA_HOME when it lives inside the tree).
    """
    found: dict[str, tuple[int, int, int, int]] = {}
    skipped: list[str] = []
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except OSError as exc:
            skipped.append(f"{rel_dir or '.'}: {exc.strerror}")
            continue
        with it:
            for entry in it:
                rel = rel_dir + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in exclude and entry.path not in skip_dirs:
                            stack.append((entry.path, rel + "/"))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[rel] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                    else:
                        skipped.append(rel)
                except OSError:
                    skipped.append(rel)
    return found, skipped


def hash_many(root: Path, rels: Sequence[str], *,
              max_workers: int | None = None) -> tuple[dict[str, tuple[int, str]], dict[str, str]]:
    """BLAKE3 of many files in parallel: ``({rel: (size, hash)}, {rel: error})``.

    Small files go in batches to a thread pool (BLAKE3 and reads release the GIL); big
    files are memory-mapped and hashed with BLAKE3's own threads (see ``hash_file``).
    """
    base = os.fspath(root)
    results: dict[str, tuple[int, str]] = {}
    errors: dict[str, str] = {}

    def run(batch: Sequence[str]) -> None:
        for rel in batch:
            try:
                results[rel] = hash_file(os.path.join(base, rel))
            except OSError as exc:
                errors[rel] = exc.strerror or str(exc)

    batches = [rels[i:i + BATCH_FILES] for i in range(0, len(rels), BATCH_FILES)]
    if len(batches) <= 1:
        for b in batches:
            run(b)
        return results, errors
    workers = max_workers or min(8, (os.cpu_count() or 2) + 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-scan") as pool:
        for future in [pool.submit(run, b) for b in batches]:
            future.result()
    return results, errors


def compare(current: dict[str, tuple[int, int, int, int]], previous: dict[str, Any],
            written_ns: int) -> tuple[list[str], int, list[str]]:
    """``(paths to hash, how many of them only because they are racy, paths gone)``.

    A path is read again when its stat data differ from the index, or when its mtime is
    not older than the index's write time (it may have changed again within that tick).
    """
    candidates: list[str] = []
    racy = 0
    for rel, st in current.items():
        old = previous.get(rel)
        if old is None or old[0] != st[0] or old[1] != st[1] or old[2] != st[2] or old[3] != st[3]:
            candidates.append(rel)
        elif st[1] >= written_ns:  # racily clean: modified in the tick the index was written
            candidates.append(rel)
            racy += 1
    gone = [rel for rel in previous if rel not in current]
    return candidates, racy, gone


def unchanged_report(root: str, index: Index, current: dict[str, tuple[int, int, int, int]], skipped: list[str],
                     seconds: float) -> ScanReport:
    """The report of a scan that found nothing to read and nothing to write."""
    totals = dict(index.summary.get("sot") or {})
    return ScanReport(
        root=root, files=len(index.entries), bytes=sum(e[0] for e in index.entries.values()), added=0, modified=0,
        deleted=0, touched=0, unchanged=len(current), hashed_files=0, hashed_bytes=0, hash_seconds=0.0, racy=0,
        skipped=tuple(sorted(skipped)), duplicate_files=int(totals.get("duplicate_files", 0)),
        duplicate_bytes=int(totals.get("duplicate_bytes", 0)), archived_blobs=int(totals.get("archived_blobs", 0)),
        archive_bytes=int(totals.get("archive_bytes", 0)), saved_bytes=int(totals.get("saved_bytes", 0)),
        new_duplicates=0, database_written=False, cltree_entry=None, seconds=round(seconds, 4))


def _stat_only(root: Path, only: Collection[str], index: Index,
               home: str) -> tuple[dict[str, tuple[int, int, int, int]], list[str], dict[str, Any]]:
    """Watch mode: stat just the changed paths (a changed directory is walked)."""
    import stat as st_mod

    current: dict[str, tuple[int, int, int, int]] = {}
    skipped: list[str] = []
    prefixes: list[str] = []
    for rel in sorted(set(only)):
        rel = rel.strip("/")
        if not rel or any(part in EXCLUDED_DIRS for part in rel.split("/")):
            continue
        full = root / rel
        if os.fspath(full) == home or os.fspath(full).startswith(home + "/"):
            continue
        try:
            st = os.lstat(full)
        except OSError:
            prefixes.append(rel)
            continue
        if st_mod.S_ISREG(st.st_mode):
            current[rel] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        elif st_mod.S_ISDIR(st.st_mode):
            prefixes.append(rel)
            sub, sub_skipped = walk(full, skip_dirs={home})
            current.update({f"{rel}/{p}": v for p, v in sub.items()})
            skipped.extend(f"{rel}/{p}" for p in sub_skipped)
        else:
            skipped.append(rel)
            prefixes.append(rel)
    previous = {p: e for p, e in index.entries.items()
                if p in current or any(p == x or p.startswith(x + "/") for x in prefixes)}
    return current, skipped, previous


def _rebuild_index(settings: NoaSettings, root: str) -> Index:
    """The index from the registry (the index file was lost or is unreadable)."""
    from sqlalchemy import select

    from noa_core.storage.database import open_database
    from noa_core.storage.models import WorkspaceRoot
    from noa_core.workspace.store import index_rows

    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            rows = index_rows(conn, root)
            written = conn.execute(select(WorkspaceRoot.index_written_ns)
                                   .where(WorkspaceRoot.path == root)).scalar() or 0
    finally:
        engine.dispose()
    return Index(root=root, entries={r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows},
                 written_ns=max(0, int(written) - RACY_MARGIN_NS) if written else 0)


def scan(settings: NoaSettings, path: Path, *, record: bool = True, max_workers: int | None = None,
         only: Collection[str] | None = None, progress: Callable[[str], None] | None = None) -> ScanReport:
    """Scan ``path`` into the workspace registry (see the module docstring).

    ``only`` (root-relative paths) limits the work to those paths, as watch mode does;
    the rest of the index is kept as it is.
    """
    started = time.perf_counter()
    root_path = Path(path).expanduser()
    if not root_path.is_dir():
        raise BadInput(f"{path}: not a directory")
    root_path = root_path.resolve()
    root = os.fspath(root_path)
    say = progress or (lambda _msg: None)
    idir = index_dir(settings)
    index = load_index(idir, root)
    if index is None:
        say("rebuilding the index from the registry")
        index = _rebuild_index(settings, root)
    home = os.fspath(settings.layout().root)
    scan_started_ns = time.time_ns()
    if only is None:
        current, skipped = walk(root_path, skip_dirs={home})
        previous = index.entries
    else:
        current, skipped, previous = _stat_only(root_path, only, index, home)
    candidates, racy, gone = compare(current, previous, index.written_ns)

    hash_started = time.perf_counter()
    hashed, errors = hash_many(root_path, candidates, max_workers=max_workers) if candidates else ({}, {})
    hash_seconds = time.perf_counter() - hash_started
    hashed_bytes = sum(size for size, _h in hashed.values())
    say(f"{len(current)} files, {len(candidates)} hashed, {len(gone)} gone")

    seen: list[Seen] = []
    for rel in candidates:
        if rel not in hashed:
            skipped.append(rel)
            current.pop(rel, None)
            if rel in previous:
                gone.append(rel)
            continue
        size, digest = hashed[rel]
        st = current[rel]
        old = previous.get(rel)
        if old is not None and old[4] == digest and old[:4] == st:
            continue  # racy, but the content is the same
        seen.append(Seen(rel, st[0], st[1], st[2], st[3], digest))

    applied = None
    totals = dict(index.summary.get("sot") or {})
    entry_id = None
    if seen or gone:
        applied, totals = _apply(settings, root, seen, gone, scan_started_ns)
    new_entries = dict(index.entries)  # watch mode keeps what it did not look at
    for rel in gone:
        new_entries.pop(rel, None)
    for rel, st in current.items():
        if rel in hashed:
            new_entries[rel] = (*st, hashed[rel][1])
    files = len(new_entries)
    total_bytes = sum(e[0] for e in new_entries.values())
    if seen or gone or racy or not index.written_ns:
        save_index(idir, Index(root=root, entries=new_entries,
                               summary={"sot": totals, "files": files, "bytes": total_bytes}))
    if applied is not None and record and (applied.added or applied.modified or applied.deleted):
        entry_id = _record(settings, root, applied, totals, files, total_bytes)
    return ScanReport(
        root=root, files=files, bytes=total_bytes,
        added=applied.added if applied else 0, modified=applied.modified if applied else 0,
        deleted=applied.deleted if applied else 0, touched=applied.touched if applied else 0,
        unchanged=len(current) - len(candidates), hashed_files=len(hashed), hashed_bytes=hashed_bytes,
        hash_seconds=round(hash_seconds, 4), racy=racy, skipped=tuple(sorted(skipped)),
        duplicate_files=int(totals.get("duplicate_files", 0)), duplicate_bytes=int(totals.get("duplicate_bytes", 0)),
        archived_blobs=int(totals.get("archived_blobs", 0)), archive_bytes=int(totals.get("archive_bytes", 0)),
        saved_bytes=int(totals.get("saved_bytes", 0)), new_duplicates=applied.new_duplicates if applied else 0,
        database_written=applied is not None, cltree_entry=entry_id,
        seconds=round(time.perf_counter() - started, 4), errors=tuple(f"{p}: {e}" for p, e in sorted(errors.items())))


def _apply(settings: NoaSettings, root: str, seen: list[Any], gone: list[str],
           scan_started_ns: int) -> tuple[Any, dict[str, int]]:
    from noa_core.storage.database import open_database
    from noa_core.workspace.archive import ContentChanged, archive_file
    from noa_core.workspace.store import apply_changes, root_id, sot_totals

    archive_dir = settings.layout().archive

    def archive_one(item: tuple[str, str]) -> tuple[str, int | None]:
        digest, rel = item
        try:
            return digest, archive_file(archive_dir, digest, Path(root) / rel)
        except (ContentChanged, OSError):
            return digest, None  # changed again or vanished: the next scan sees it

    def archive(wanted: dict[str, str]) -> dict[str, int | None]:
        if len(wanted) < 8:
            return dict(map(archive_one, wanted.items()))
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) + 1),
                                thread_name_prefix="noa-archive") as pool:  # zstd and I/O release the GIL
            return dict(pool.map(archive_one, wanted.items(), chunksize=32))

    engine = open_database(settings)
    try:
        applied = apply_changes(engine, root, seen, gone, archive=archive, index_written_ns=scan_started_ns)
        with engine.connect() as conn:
            rid = root_id(conn, root, create=False)
            totals = sot_totals(conn, rid) if rid is not None else {}
    finally:
        engine.dispose()
    return applied, totals


def _record(settings: NoaSettings, root: str, applied: Any, totals: dict[str, int], files: int,
            total_bytes: int) -> str | None:
    from noa_core.cltree import record_change

    entry = record_change(settings, "registry", f"workspace:{root}"[-300:], {
        "root": root, "added": applied.added, "modified": applied.modified, "deleted": applied.deleted,
        "versions": applied.versions, "new_duplicates": applied.new_duplicates, "files": files,
        "bytes": total_bytes, "saved_bytes": int(totals.get("saved_bytes", 0))})
    return entry.id
