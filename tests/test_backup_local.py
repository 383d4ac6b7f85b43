"""Backups on the local-directory backend, on a tree of real sdists with duplicates."""

from __future__ import annotations

import json
import os
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_helpers import assert_same_tree, build_tree
from noa_core.backup.interface import BackupBadInput, BackupError
from noa_core.backup.local import LocalBackend
from noa_core.backup.maintenance import Policy, apply_policy, forget, prune, verify
from noa_core.backup.repo_lock import RepoLock
from noa_core.backup.repository import Repository, Snapshot, pack_key
from noa_core.backup.restore import restore
from noa_core.backup.snapshots import backup


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("backup-src") / "tree")


def _repo(tmp_path: Path, password: str | None = None) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"), password, encrypt=password is not None)


def test_backup_restore_is_byte_identical_with_modes_and_mtimes(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    result = backup(repo, tree)
    assert result.files > 100 and result.skipped == ()
    # the duplicated sdist adds no blob: stored blobs < files, and compressed size < raw size
    assert result.blobs_new < result.files
    assert result.bytes_stored < result.bytes
    out = tmp_path / "restored"
    restored = restore(repo, "latest", out)
    assert restored.files == result.files
    assert_same_tree(tree, out)
    assert [s.id for s in repo.snapshots()] == [result.snapshot.id]


def test_unchanged_files_are_not_read_again_and_changes_are_seen(tree: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    os.system(f"cp -a {tree} {work}")
    os.chmod(work / "extra" / "ro", 0o755)
    repo = _repo(tmp_path)
    first = backup(repo, work)
    second = backup(repo, work)
    assert second.files_reused == second.files and second.blobs_new == 0 and second.packs_new == 0
    assert second.snapshot.tree == first.snapshot.tree      # same tree blob: nothing new stored
    (work / "extra" / "secret.txt").write_text("changed, same length?\n")
    (work / "extra" / "new.txt").write_text("brand new\n")
    third = backup(repo, work)
    assert third.files == first.files + 1
    assert third.blobs_new == 2 and third.files_reused == third.files - 2
    out = tmp_path / "out"
    restore(repo, third.snapshot.id[:8], out)
    assert_same_tree(work, out)
    restore(repo, first.snapshot.id, tmp_path / "old")
    assert (tmp_path / "old" / "extra" / "secret.txt").read_text() == "only me\n"


def test_verify_names_a_corrupted_blob_and_the_file_it_breaks(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    snap = backup(repo, tree).snapshot
    assert verify(repo).ok
    index = repo.load_index()
    entries = repo.load_tree(index, snap)
    victim = next(e for e in entries if e[0] == "extra/run.sh")
    blob = victim[5][0]
    ref = index.blobs[blob]
    path = tmp_path / "repo" / pack_key(ref.pack)
    data = bytearray(path.read_bytes())
    data[ref.offset + ref.length // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify(repo)
    assert not report.ok
    assert [c["blob"] for c in report.corrupted] == [blob]
    assert report.corrupted[0]["pack"] == ref.pack
    assert "extra/run.sh" in report.snapshots[snap.id] and blob in report.snapshots[snap.id]
    with pytest.raises(BackupError, match=blob):
        restore(repo, "latest", tmp_path / "out")


def test_verify_names_every_blob_of_a_missing_pack(tree: Path, tmp_path: Path) -> None:
    repo = Repository.init(LocalBackend(tmp_path / "repo"), None, encrypt=False, pack_bytes=64 * 1024)
    backup(repo, tree)
    index = repo.load_index()
    pack = sorted(index.packs)[0]
    (tmp_path / "repo" / pack_key(pack)).unlink()
    report = verify(repo)
    assert {m["blob"] for m in report.missing} == set(index.packs[pack])
    assert all(m["pack"] == pack for m in report.missing)


def test_encrypted_repository_hides_content_and_names(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path, password="correct horse")
    snap = backup(repo, tree).snapshot
    marker = (tree / "extra" / "run.sh").read_bytes()
    from blake3 import blake3

    plain_id = blake3(marker).hexdigest()
    for dirpath, _d, files in os.walk(tmp_path / "repo"):
        for f in files:
            raw = (Path(dirpath) / f).read_bytes()
            assert marker not in raw and b"cachetools" not in raw and plain_id.encode() not in raw, f
    index = repo.load_index()
    assert plain_id not in index.blobs          # keyed ids: a known file's hash is not its name
    with pytest.raises(BackupBadInput, match="wrong backup password"):
        Repository.open(LocalBackend(tmp_path / "repo"), "wrong")
    with pytest.raises(BackupBadInput, match="encrypted"):
        Repository.open(LocalBackend(tmp_path / "repo"), None)
    again = Repository.open(LocalBackend(tmp_path / "repo"), "correct horse")
    restore(again, snap.id, tmp_path / "out")
    assert_same_tree(tree, tmp_path / "out")
    assert verify(again).ok


def test_forget_and_prune_keep_every_blob_a_kept_snapshot_needs(tree: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    os.system(f"cp -a {tree} {work}")
    os.chmod(work / "extra" / "ro", 0o755)
    repo = Repository.init(LocalBackend(tmp_path / "repo"), None, encrypt=False, pack_bytes=128 * 1024)
    backup(repo, work)
    (work / "extra" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))   # old big.bin becomes garbage
    (work / "extra" / "gone.txt").write_text("short-lived\n")
    backup(repo, work)
    (work / "extra" / "gone.txt").unlink()
    last = backup(repo, work).snapshot
    before = sum(f.stat().st_size for f in (tmp_path / "repo" / "data").rglob("*") if f.is_file())

    dry = forget(repo, Policy(keep_last=1), dry_run=True)
    assert len(repo.snapshots()) == 3 and [s.id for s, why in dry if why] == [last.id]
    assert prune(repo, dry_run=True).dry_run
    forget(repo, Policy(keep_last=1))
    assert [s.id for s in repo.snapshots()] == [last.id]
    result = prune(repo)
    after = sum(f.stat().st_size for f in (tmp_path / "repo" / "data").rglob("*") if f.is_file())
    assert result.blobs_removed >= 3 and after < before - 2 * 1024 * 1024
    assert verify(repo).ok
    restore(repo, "latest", tmp_path / "out")
    assert_same_tree(work, tmp_path / "out")
    # a second prune finds nothing more to do
    again = prune(repo)
    assert again.packs_deleted == 0 and again.blobs_removed == 0


def _snap(i: int, when: datetime) -> Snapshot:
    return Snapshot(id=f"{i:064x}", time=when.isoformat(), time_ns=int(when.timestamp() * 1e9), hostname="h",
                    paths=("/src",), tree="t", parent=None, tags=(), stats={}, cltree=None)


def test_retention_policy_matches_restic_forget_rules() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)     # a Thursday
    snaps = [_snap(i, start + timedelta(hours=12 * i)) for i in range(40)]   # two a day for 20 days
    keep = {s.time[:16] for s, why in apply_policy(snaps, Policy(keep_last=2, keep_daily=3, keep_weekly=2)) if why}
    # last 2, the newest of the last 3 days (one is already a "last"), newest of the last 2 ISO weeks
    assert keep == {"2026-01-20T12:00", "2026-01-21T00:00", "2026-01-19T12:00", "2026-01-18T12:00"}
    with pytest.raises(BackupBadInput):
        apply_policy(snaps, Policy())


def test_prune_waits_for_no_one_backup_refuses_while_prune_holds_the_lock(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    backend = repo.backend
    with repo.lock(exclusive=True):
        with pytest.raises(BackupError, match="locked by an exclusive"):
            backup(repo, tree)
    # a lock left by a killed process on this host is stale and removed
    backend.put("locks/dead", json.dumps({"exclusive": True, "hostname": RepoLock(backend, True).host,
                                          "pid": 2 ** 22 - 7, "time": time.time()}).encode())
    assert backup(repo, tree).files > 100
    assert not list(backend.list("locks/"))


def test_restore_refuses_a_non_empty_target(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    backup(repo, tree)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(BackupBadInput, match="not empty"):
        restore(repo, "latest", tmp_path / "busy")
    with pytest.raises(BackupBadInput, match="not found"):
        restore(repo, "ffffffff", tmp_path / "new")


def test_pack_header_lets_a_lost_index_be_rebuilt(tree: Path, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    backup(repo, tree)
    index = repo.load_index()
    pack = next(iter(index.packs))
    raw = (tmp_path / "repo" / pack_key(pack)).read_bytes()
    (hlen,) = struct.unpack("<I", raw[-4:])
    assert sorted(e[0] for e in repo.read_pack_header(pack)) == sorted(index.packs[pack])
    assert hlen < len(raw)
