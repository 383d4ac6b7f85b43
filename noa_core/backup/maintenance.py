"""verify (re-hash every blob), forget (retention like restic) and prune.

``prune`` takes the exclusive lock, so it never runs while a backup holds its shared
lock; it keeps every blob that a remaining snapshot's tree names (and the tree blobs
themselves), repacks packs that are partly garbage, writes the new index before it
deletes the old index files, and deletes packs only after that.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from noa_core.backup.crypto import IntegrityError
from noa_core.backup.interface import BackupBadInput, BackupError, ObjectMissing
from noa_core.backup.pack_writer import PackWriter
from noa_core.backup.repository import Index, Repository, Snapshot, pack_key
from noa_core.backup.tree_entry import CHUNKS, K


# ---------------------------------------------------------------------------- verify
@dataclass
class VerifyReport:
    packs: int = 0
    blobs_checked: int = 0
    bytes_checked: int = 0
    corrupted: list[dict] = field(default_factory=list)   # {"blob", "pack", "reason"}
    missing: list[dict] = field(default_factory=list)     # {"blob", "pack" or None, "reason"}
    snapshots: dict[str, str] = field(default_factory=dict)  # id -> "ok" | "damaged: ..."
    unindexed_packs: list[str] = field(default_factory=list)
    bad_index_files: list[str] = field(default_factory=list)
    read_data: bool = True

    @property
    def ok(self) -> bool:
        return not self.corrupted and not self.missing and not self.bad_index_files

    def to_json(self) -> dict:
        return {"ok": self.ok, "packs": self.packs, "blobs_checked": self.blobs_checked,
                "bytes_checked": self.bytes_checked, "corrupted": self.corrupted, "missing": self.missing,
                "snapshots": self.snapshots, "unindexed_packs": self.unindexed_packs,
                "bad_index_files": self.bad_index_files, "read_data": self.read_data}


def verify(repo: Repository, *, read_data: bool = True, workers: int = 3) -> VerifyReport:
    """Check every pack and blob; name each corrupted or missing blob and the snapshots it breaks."""
    report = VerifyReport(read_data=read_data)
    with repo.lock(exclusive=False):
        index = repo.load_index(errors=report.bad_index_files)
        present = {info.key.rsplit("/", 1)[-1]: info.size for info in repo.backend.list("data/")}
        report.unindexed_packs = sorted(set(present) - set(index.packs))
        report.packs = len(index.packs)
        bad: dict[str, str] = {}       # blob -> "missing" | "corrupted"

        for pack, blobs in index.packs.items():
            if pack not in present:
                for b in blobs:
                    bad[b] = "missing"
                    report.missing.append({"blob": b, "pack": pack, "reason": f"pack {pack} is missing"})

        def check_pack(pack: str) -> tuple[int, int, list[dict]]:
            found: list[dict] = []
            try:
                data = memoryview(repo.backend.get(pack_key(pack)))
            except ObjectMissing:
                return 0, 0, [{"blob": b, "pack": pack, "reason": "pack vanished", "missing": True}
                              for b in index.packs[pack]]
            n = 0
            for b in index.packs[pack]:
                ref = index.blobs[b]
                if ref.pack != pack:
                    continue
                n += 1
                try:
                    if ref.offset + ref.length > len(data):
                        raise IntegrityError("pack is truncated")
                    repo.unseal_blob(b, data[ref.offset:ref.offset + ref.length])
                except (IntegrityError, Exception) as exc:  # noqa: BLE001 - zstd errors too
                    found.append({"blob": b, "pack": pack, "reason": _reason(exc)})
            return n, len(data), found

        if read_data:
            packs = [p for p in index.packs if p in present]
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="noa-verify") as pool:
                for n, size, found in pool.map(check_pack, packs):
                    report.blobs_checked += n
                    report.bytes_checked += size
                    for item in found:
                        if item.pop("missing", False):
                            bad[item["blob"]] = "missing"
                            report.missing.append(item)
                        else:
                            bad[item["blob"]] = "corrupted"
                            report.corrupted.append(item)

        for snap in repo.snapshots():
            problems: list[str] = []
            if snap.tree in bad or snap.tree not in index.blobs:
                problems.append(f"tree blob {snap.tree} {bad.get(snap.tree, 'missing')}")
                if snap.tree not in index.blobs:
                    report.missing.append({"blob": snap.tree, "pack": None, "reason": "not in any index"})
            else:
                try:
                    entries = repo.load_tree(index, snap)
                except BackupError as exc:
                    entries = []
                    problems.append(f"tree blob {snap.tree}: {_reason(exc)}")
                for e in entries:
                    if e[K] != "f":
                        continue
                    for c in e[CHUNKS]:
                        if c in bad:
                            problems.append(f"{e[0]}: blob {c} {bad[c]}")
                        elif c not in index.blobs:
                            bad[c] = "missing"
                            report.missing.append({"blob": c, "pack": None, "reason": f"needed by {e[0]}"})
                            problems.append(f"{e[0]}: blob {c} missing")
            report.snapshots[snap.id] = "ok" if not problems else "damaged: " + "; ".join(problems[:5]) + (
                f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
    return report


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------- forget
@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def empty(self) -> bool:
        return not any((self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly))


def _buckets(t: datetime) -> dict[str, str]:
    iso = t.isocalendar()
    return {"hourly": t.strftime("%Y-%m-%d %H"), "daily": t.strftime("%Y-%m-%d"),
            "weekly": f"{iso[0]}-W{iso[1]:02d}", "monthly": t.strftime("%Y-%m")}


def apply_policy(snapshots: Sequence[Snapshot], policy: Policy) -> list[tuple[Snapshot, list[str]]]:
    """Decide per snapshot like ``restic forget``: returns (snapshot, reasons kept) newest first.

    Snapshots are grouped by host and paths; in each group, newest first, ``keep_last``
    keeps the N newest, and each of hourly/daily/weekly/monthly keeps the newest
    snapshot of each of the last N periods that have one. Empty reasons = forget.
    """
    if policy.empty():
        raise BackupBadInput("give at least one of --keep-last/--keep-hourly/--keep-daily/--keep-weekly/"
                             "--keep-monthly (refusing to forget everything)")
    groups: dict[tuple, list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault((s.hostname, s.paths), []).append(s)
    out: list[tuple[Snapshot, list[str]]] = []
    for snaps in groups.values():
        snaps = sorted(snaps, key=lambda s: s.time_ns, reverse=True)
        left = {"last": policy.keep_last, "hourly": policy.keep_hourly, "daily": policy.keep_daily,
                "weekly": policy.keep_weekly, "monthly": policy.keep_monthly}
        seen: dict[str, str | None] = {k: None for k in left}
        for s in snaps:
            t = datetime.fromtimestamp(s.time_ns / 1e9, UTC)
            b = _buckets(t)
            reasons = []
            if left["last"] > 0:
                left["last"] -= 1
                reasons.append("last")
            for rule in ("hourly", "daily", "weekly", "monthly"):
                if left[rule] > 0 and b[rule] != seen[rule]:
                    seen[rule] = b[rule]
                    left[rule] -= 1
                    reasons.append(f"{rule} {b[rule]}")
            out.append((s, reasons))
    return sorted(out, key=lambda x: x[0].time_ns, reverse=True)


def forget(repo: Repository, policy: Policy, *, dry_run: bool = False) -> list[tuple[Snapshot, list[str]]]:
    """Remove the snapshot manifests the policy does not keep (data goes at prune)."""
    decisions = apply_policy(repo.snapshots(), policy)
    if not dry_run:
        with repo.lock(exclusive=True):
            for s, reasons in decisions:
                if not reasons:
                    repo.backend.delete(f"snapshots/{s.id}")
    return decisions


# ---------------------------------------------------------------------------- prune
@dataclass(frozen=True)
class PruneResult:
    blobs_kept: int
    blobs_removed: int
    packs_deleted: int
    packs_repacked: int
    packs_written: int
    unindexed_deleted: int
    bytes_freed: int
    dry_run: bool

    def to_json(self) -> dict:
        return dict(self.__dict__)


def used_blobs(repo: Repository, index: Index) -> set[str]:
    used: set[str] = set()
    for snap in repo.snapshots():
        used.add(snap.tree)
        for e in repo.load_tree(index, snap):
            if e[K] == "f":
                used.update(e[CHUNKS])
    return used


def prune(repo: Repository, *, dry_run: bool = False, max_unused: float = 0.05) -> PruneResult:
    """Delete data no snapshot needs. A tree that cannot be read stops prune (nothing deleted)."""
    with repo.lock(exclusive=True):
        index = repo.load_index()
        sizes = {info.key.rsplit("/", 1)[-1]: info.size for info in repo.backend.list("data/")}
        used = used_blobs(repo, index)
        missing = [b for b in used if b not in index.blobs]
        if missing:
            raise BackupError(f"prune refused: {len(missing)} blob(s) kept snapshots need are missing "
                              f"(first {missing[0]}); run verify")
        delete: list[str] = []
        repack: list[str] = []
        for pack, blobs in index.packs.items():
            own = [b for b in blobs if index.blobs[b].pack == pack]
            live = [b for b in own if b in used]
            if not live:
                delete.append(pack)
                continue
            dead_bytes = sum(index.blobs[b].length for b in own if b not in used)
            if own and dead_bytes > max_unused * max(1, sizes.get(pack, 1)):
                repack.append(pack)
        unindexed = [p for p in sizes if p not in index.packs]
        freed = sum(sizes.get(p, 0) for p in delete + unindexed)
        removed = len({b for b in index.blobs if b not in used})
        written: dict[str, list[list[Any]]] = {}
        if not dry_run:
            writer = PackWriter(repo)
            try:
                for pack in repack:
                    data = repo.backend.get(pack_key(pack))
                    for b in index.packs[pack]:
                        ref = index.blobs[b]
                        if b in used and ref.pack == pack:
                            sealed = bytes(data[ref.offset:ref.offset + ref.length])
                            repo.unseal_blob(b, sealed)  # never copy a corrupted blob
                            writer.add(b, sealed, ref.raw_length)
                written = writer.finish()
            except BaseException:
                writer.abort()
                raise
            gone = set(delete) | set(repack)
            keep: dict[str, list[list[Any]]] = dict(written)
            for pack, blobs in index.packs.items():
                if pack in gone:
                    continue
                entries = []
                for b in blobs:
                    ref = index.blobs[b]
                    if ref.pack == pack and b in used:
                        entries.append([b, ref.offset, ref.length, ref.raw_length])
                if entries:
                    keep[pack] = entries
            new_key = repo.write_index(keep)
            for key in index.files:
                if key != new_key:
                    repo.backend.delete(key)
            for pack in list(gone) + unindexed:
                repo.backend.delete(pack_key(pack))
            freed += sum(sizes.get(p, 0) for p in repack) - sum(
                sum(e[2] for e in v) for v in written.values())
    return PruneResult(blobs_kept=len(used), blobs_removed=removed, packs_deleted=len(delete),
                       packs_repacked=len(repack), packs_written=len(written), unindexed_deleted=len(unindexed),
                       bytes_freed=max(0, freed), dry_run=dry_run)
