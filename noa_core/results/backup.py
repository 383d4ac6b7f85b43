"""Results of the backup flows (``backup``, ``restore``, ``verify``, ``cleanup``,
``backup-forget``): what ``noa workspace backup|restore|verify|cleanup|forget --json`` print.

The backup domain (:mod:`noa_core.backup`) keeps its own dataclasses and their ``to_json()``;
the flows validate that JSON into these models at their edge.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from noa_core.results.base import FlowResult, ResultPart

__all__ = ["BackupReport", "CleanupItem", "CleanupReport", "ForgetReport", "PruneReport", "RestoreReport",
           "SnapshotInfo", "VerifyReport"]


class SnapshotInfo(ResultPart):
    """One snapshot in the backup repository."""

    id: str = Field(description="snapshot id (hex)")
    time: str = Field(description="when it was taken (ISO 8601)")
    time_ns: int = Field(description="when it was taken, ns since the epoch")
    hostname: str = Field(description="the host that took it")
    paths: list[str] = Field(description="the source paths")
    tree: str = Field(description="id of its root tree blob")
    parent: str | None = Field(None, description="the snapshot it was made incrementally from")
    tags: list[str] = Field(default_factory=list, description="tags given to it")
    stats: dict[str, Any] = Field(default_factory=dict, description="its own counts")
    cltree: dict[str, Any] | None = Field(None, description="the CL tree head (size, root) stored in it")


class BackupReport(FlowResult):
    """A snapshot of NOA_HOME (or SOURCE) written into the backup repository."""

    files: int = Field(description="files in the snapshot")
    dirs: int = Field(description="directories in the snapshot")
    bytes: int = Field(description="bytes of file content in the snapshot")
    files_reused: int = Field(description="files unchanged since the parent snapshot (not re-read)")
    blobs_new: int = Field(description="new content blobs stored")
    bytes_new_raw: int = Field(description="bytes of new content before compression")
    bytes_stored: int = Field(description="bytes written to the repository")
    packs_new: int = Field(description="pack files written")
    packs_recovered: int = Field(description="packs of a crashed earlier backup indexed and reused")
    skipped: list[str] = Field(default_factory=list, description="entries that could not be read, and why")
    seconds: float = Field(description="wall time")
    snapshot: SnapshotInfo = Field(description="the new snapshot")
    repository: str = Field(description="where the repository is (no credentials)")
    encrypted: bool = Field(description="the repository is encrypted")
    cltree_checkpoint: dict[str, Any] = Field(description="the CL tree head stored in the snapshot")
    cltree_entry: str | None = Field(None, description="id of the CL tree entry recording the backup, "
                                                       "or 'skipped: ...'")


class RestoreReport(FlowResult):
    """A snapshot restored byte for byte, with permissions and mtimes."""

    snapshot: str = Field(description="id of the restored snapshot")
    target: str = Field(description="directory restored into")
    files: int = Field(description="files restored")
    dirs: int = Field(description="directories restored")
    symlinks: int = Field(description="symlinks restored")
    bytes: int = Field(description="bytes restored")
    seconds: float = Field(description="wall time")


class VerifyReport(FlowResult):
    """Every pack and blob of the repository checked; each bad blob named with the snapshots it breaks."""

    ok: bool = Field(description="no corrupted or missing blob and no bad index file")
    packs: int = Field(description="packs in the index")
    blobs_checked: int = Field(description="blobs re-hashed (or listed, without read_data)")
    bytes_checked: int = Field(description="bytes re-hashed")
    corrupted: list[dict[str, Any]] = Field(default_factory=list, description="corrupted blobs: blob, pack, reason")
    missing: list[dict[str, Any]] = Field(default_factory=list, description="missing blobs: blob, pack, reason")
    snapshots: dict[str, str] = Field(default_factory=dict, description="snapshot id -> ok | damaged: ...")
    unindexed_packs: list[str] = Field(default_factory=list, description="packs present but in no index")
    bad_index_files: list[str] = Field(default_factory=list, description="index files that could not be read")
    read_data: bool = Field(True, description="blob contents were read and re-hashed")


class PruneReport(ResultPart):
    """Data no snapshot needs, deleted (or counted, in a dry run)."""

    blobs_kept: int = Field(description="blobs still needed")
    blobs_removed: int = Field(description="blobs removed")
    packs_deleted: int = Field(description="packs deleted whole")
    packs_repacked: int = Field(description="packs rewritten without their unused blobs")
    packs_written: int = Field(description="packs written by repacking")
    unindexed_deleted: int = Field(description="leftover packs of crashed backups deleted")
    bytes_freed: int = Field(description="bytes freed")
    dry_run: bool = Field(description="nothing was deleted")


class ForgetReport(FlowResult):
    """Snapshots kept and removed by the retention policy, then (``prune``) the repository pruned."""

    keep: list[dict[str, Any]] = Field(default_factory=list, description="kept snapshots: id, time, reasons")
    remove: list[dict[str, Any]] = Field(default_factory=list, description="removed snapshots: id, time")
    dry_run: bool = Field(description="nothing was removed")
    prune: PruneReport | None = Field(None, description="the prune that followed, when asked")


class CleanupItem(ResultPart):
    """One thing cleanup removes (or would remove)."""

    kind: str = Field(description="snapshot, drop, sandbox, archive, tmp or pyenv")
    target: str = Field(description="a path, or a snapshot id")
    bytes: int = Field(description="bytes it holds")
    reason: str = Field(description="why it goes")


class CleanupReport(FlowResult):
    """Stale sandboxes, orphaned archive blobs, snapshots out of retention, old drops and tmp: listed,
    and removed when ``dry_run`` is false."""

    items: list[CleanupItem] = Field(default_factory=list, description="everything cleanup found")
    bytes: int = Field(description="bytes the items hold")
    skipped: dict[str, str] = Field(default_factory=dict, description="kind -> why it was not looked at")
    counts: dict[str, int] = Field(default_factory=dict, description="items per kind")
    dry_run: bool = Field(description="only listed, nothing removed")
    applied: dict[str, Any] | None = Field(None, description="what was removed: removed, bytes, prune "
                                                             "(absent in a dry run)")
