"""The workspace registry in the database: roots, the index of files, versions, SOT blobs.

:func:`apply_changes` is the single write of a scan: one transaction, taken with the
writer lock first (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL). It
decides versions against what the database holds (not against the index file), so a
scan that is killed between the commit and the index write is simply repeated.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from noa_core.storage.models import (
    WorkspaceBlob,
    WorkspaceFile,
    WorkspaceRoot,
    WorkspaceVersion,
)
from noa_core.workspace.changes import Applied, Seen

R = WorkspaceRoot.__table__
F = WorkspaceFile.__table__
V = WorkspaceVersion.__table__
B = WorkspaceBlob.__table__
PG_LOCK_KEY = 0x6E6F61777370  # "noawsp"
IN_CHUNK = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def lock(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})


def root_id(conn: Connection, root: str, *, create: bool) -> int | None:
    row = conn.execute(select(R.c.id).where(R.c.path == root)).first()
    if row is not None:
        return int(row.id)
    if not create:
        return None
    result = conn.execute(insert(R).values(path=root, created=utcnow(), index_written_ns=0, files=0, bytes=0))
    return int(result.inserted_primary_key[0])


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), IN_CHUNK):
        yield items[i:i + IN_CHUNK]


def blobs_for(conn: Connection, hashes: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(hashes))
    found: dict[str, Any] = {}
    for part in _chunks(wanted):
        for row in conn.execute(select(B).where(B.c.hash.in_(part))):
            found[row.hash] = row
    return found


def file_rows(conn: Connection, rid: int) -> dict[str, Any]:
    return {r.path: r for r in conn.execute(select(F.c.id, F.c.path, F.c.hash, F.c.version, F.c.source, F.c.size)
                                            .where(F.c.root_id == rid))}


def index_rows(conn: Connection, root: str) -> list[tuple[str, int, int, int, int, str]]:
    """``(path, size, mtime_ns, ctime_ns, inode, hash)`` of a root (to rebuild a lost index)."""
    rid = root_id(conn, root, create=False)
    if rid is None:
        return []
    return [tuple(r) for r in conn.execute(select(F.c.path, F.c.size, F.c.mtime_ns, F.c.ctime_ns, F.c.inode,
                                                  F.c.hash).where(F.c.root_id == rid))]


def _max_versions(conn: Connection, rid: int, paths: Sequence[str]) -> dict[str, int]:
    query = select(V.c.path, func.max(V.c.version)).where(V.c.root_id == rid).group_by(V.c.path)
    if len(paths) <= IN_CHUNK:
        query = query.where(V.c.path.in_(list(paths)))
    return {r[0]: int(r[1]) for r in conn.execute(query)}


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def apply_changes(engine: Engine, root: str, seen: Sequence[Seen], gone: Sequence[str], *,
                  archive: Callable[[dict[str, str]], dict[str, int | None]],
                  index_written_ns: int = 0) -> Applied:
    """Record one scan's changes in one transaction.

    ``archive({hash: rel_path})`` stores each duplicated content once and returns the
    compressed sizes (None: it could not, e.g. the file changed again meanwhile).
    """
    now = utcnow()
    with engine.connect() as conn:
        lock(conn)
        rid = root_id(conn, root, create=True)
        assert rid is not None
        rows = file_rows(conn, rid)
        roots = {int(r.id): r.path for r in conn.execute(select(R.c.id, R.c.path))}
        pending = {p: r.hash for p, r in rows.items()}  # each path's content after this scan
        for item in seen:
            pending[item.path] = item.hash
        for p in gone:
            pending.pop(p, None)
        last = _max_versions(conn, rid, [x.path for x in seen] + list(gone))

        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        touched_rows: list[dict[str, Any]] = []
        version_rows: list[dict[str, Any]] = []
        content: list[tuple[Seen, dict[str, Any]]] = []
        orphaned: set[str] = set()
        for item in sorted(seen, key=lambda x: x.path):  # ids follow path order: "oldest copy" is deterministic
            row = rows.get(item.path)
            stat = {"size": item.size, "mtime_ns": item.mtime_ns, "ctime_ns": item.ctime_ns, "inode": item.inode}
            if row is not None and row.hash == item.hash:
                touched_rows.append({"b_id": row.id, **stat})
                continue
            version = last.get(item.path, 0) + 1
            change = "added" if row is None else "modified"
            if row is not None and row.source is None:
                orphaned.add(row.hash)  # it was the source of its old content
            target = {"root_id": rid, "path": item.path, "hash": item.hash, "version": version, "source": None,
                      **stat}
            if row is None:
                new_rows.append(target)
            else:
                changed_rows.append({"b_id": row.id, **{k: v for k, v in target.items() if k not in ("root_id", "path")}})
            version_rows.append({"root_id": rid, "path": item.path, "version": version, "hash": item.hash,
                                 "size": item.size, "change": change, "seen": now})
            content.append((item, target))
        for p in gone:
            row = rows.get(p)
            if row is None:
                continue
            if row.source is None:
                orphaned.add(row.hash)
            version_rows.append({"root_id": rid, "path": p, "version": last.get(p, 0) + 1, "hash": None,
                                 "size": 0, "change": "deleted", "seen": now})

        # single source of truth: the first path seen with a content is its source; later copies point at it
        blobs = {h: dict(r._mapping) for h, r in blobs_for(conn, [c[0].hash for c in content] + sorted(orphaned)).items()}

        def source_alive(blob: dict[str, Any]) -> bool:
            if blob["root_id"] is None:
                return False
            if blob["root_id"] == rid:
                return pending.get(blob["source_path"]) == blob["hash"]
            row = conn.execute(select(F.c.hash).where(F.c.root_id == blob["root_id"],
                                                      F.c.path == blob["source_path"])).first()
            return row is not None and row.hash == blob["hash"]

        blob_inserts: list[dict[str, Any]] = []
        blob_updates: dict[str, dict[str, Any]] = {}
        need_archive: dict[str, str] = {}
        for item, target in sorted(content, key=lambda c: c[0].path):
            blob = blobs.get(item.hash)
            if blob is None:
                blob = {"hash": item.hash, "size": item.size, "root_id": rid, "source_path": item.path,
                        "archived_bytes": None, "created": now}
                blobs[item.hash] = blob
                blob_inserts.append(blob)
                continue
            if blob["root_id"] == rid and blob["source_path"] == item.path:
                continue
            if not source_alive(blob):
                blob.update(root_id=rid, source_path=item.path)
                blob_updates[item.hash] = blob
                continue
            target["source"] = _join(roots.get(blob["root_id"], root), blob["source_path"])
            if item.hash not in need_archive:  # archive_file is a no-op when it is already there
                need_archive[item.hash] = item.path

        if gone:
            ids = [rows[p].id for p in gone if p in rows]
            for part in _chunks(ids):
                conn.execute(delete(F).where(F.c.id.in_(list(part))))
        if new_rows:
            conn.execute(insert(F), new_rows)
        if changed_rows:
            conn.execute(update(F).where(F.c.id == bindparam("b_id")), changed_rows)
        if touched_rows:
            conn.execute(update(F).where(F.c.id == bindparam("b_id")), touched_rows)
        if version_rows:
            conn.execute(insert(V), version_rows)
        if blob_inserts:
            conn.execute(insert(B), blob_inserts)
        for digest, blob in blob_updates.items():  # a new source: every other copy points at it
            conn.execute(update(B).where(B.c.hash == digest).values(root_id=blob["root_id"],
                                                                    source_path=blob["source_path"]))
            conn.execute(update(F).where(F.c.hash == digest).values(source=_join(root, blob["source_path"])))
            conn.execute(update(F).where(F.c.root_id == rid, F.c.path == blob["source_path"]).values(source=None))
        for digest in sorted(orphaned):  # a source that went away: its oldest remaining copy takes over
            blob = blobs.get(digest)
            if blob is not None and digest not in blob_updates and not source_alive(blob):
                _repoint(conn, digest, rid, root, roots)
        sizes = archive(need_archive) if need_archive else {}
        archived_rows = [{"b_hash": digest, "archived_bytes": size} for digest, size in sizes.items()
                         if size is not None]
        if archived_rows:
            os.sync()  # the archive files are durable before the registry says they exist
            conn.execute(update(B).where(B.c.hash == bindparam("b_hash")), archived_rows)
        archived = len(archived_rows)
        totals = conn.execute(select(func.count(), func.coalesce(func.sum(F.c.size), 0))
                              .where(F.c.root_id == rid)).one()
        conn.execute(update(R).where(R.c.id == rid).values(last_scan=now, files=int(totals[0]),
                                                          bytes=int(totals[1]), index_written_ns=index_written_ns))
        conn.commit()
    dups = sum(1 for _item, target in content if target["source"])
    return Applied(added=len(new_rows), modified=len(changed_rows), deleted=len([p for p in gone if p in rows]),
                   touched=len(touched_rows), new_duplicates=dups, archived_blobs=archived,
                   versions=len(version_rows))


def _repoint(conn: Connection, digest: str, rid: int, root: str, roots: dict[int, str]) -> None:
    """The source of ``digest`` is gone: the oldest remaining copy becomes the source, the rest point at it."""
    cand = conn.execute(select(F.c.root_id, F.c.path, F.c.id).where(F.c.hash == digest)
                        .order_by(F.c.id).limit(1)).first()
    if cand is None:
        conn.execute(update(B).where(B.c.hash == digest).values(root_id=None))
        return
    conn.execute(update(B).where(B.c.hash == digest).values(root_id=cand.root_id, source_path=cand.path))
    conn.execute(update(F).where(F.c.id == cand.id).values(source=None))
    new_source = _join(roots.get(int(cand.root_id), root), cand.path)
    conn.execute(update(F).where(F.c.hash == digest, F.c.id != cand.id).values(source=new_source))


def sot_totals(conn: Connection, rid: int) -> dict[str, int]:
    """Duplicates under a root and what the single-source-of-truth archive saves."""
    dup = conn.execute(select(func.count(), func.coalesce(func.sum(F.c.size), 0))
                       .where(F.c.root_id == rid, F.c.source.is_not(None))).one()
    hashes = select(F.c.hash).where(F.c.root_id == rid, F.c.source.is_not(None)).distinct().subquery()
    arch = conn.execute(select(func.count(), func.coalesce(func.sum(B.c.archived_bytes), 0))
                        .where(B.c.hash.in_(select(hashes.c.hash)), B.c.archived_bytes.is_not(None))).one()
    dup_bytes, archive_bytes = int(dup[1]), int(arch[1])
    return {"duplicate_files": int(dup[0]), "duplicate_bytes": dup_bytes, "archived_blobs": int(arch[0]),
            "archive_bytes": archive_bytes, "saved_bytes": max(0, dup_bytes - archive_bytes)}


def versions_of(conn: Connection, root: str, path: str) -> list[dict[str, Any]]:
    rid = root_id(conn, root, create=False)
    if rid is None:
        return []
    rows = conn.execute(select(V).where(V.c.root_id == rid, V.c.path == path).order_by(V.c.version))
    return [{"version": r.version, "hash": r.hash, "size": r.size, "change": r.change,
             "seen": r.seen.isoformat()} for r in rows]


def list_roots(conn: Connection) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute(select(R).order_by(R.c.path)):
        doc = {"root": r.path, "files": r.files, "bytes": r.bytes,
               "last_scan": r.last_scan.isoformat() if r.last_scan else None}
        doc.update(sot_totals(conn, int(r.id)))
        out.append(doc)
    return out


def referenced_archive_hashes(conn: Connection) -> set[str]:
    """Archive blobs some current duplicate still needs (anything else in the archive is orphaned)."""
    dup_hashes = select(F.c.hash).where(F.c.source.is_not(None)).distinct().subquery()
    rows = conn.execute(select(B.c.hash).where(B.c.archived_bytes.is_not(None),
                                               B.c.hash.in_(select(dup_hashes.c.hash))))
    return {r.hash for r in rows}
