"""kill -9 in the middle of a backup: the previous snapshots stay, no half snapshot, the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from backup_helpers import REPO_ROOT, assert_same_tree, build_tree
from noa_core.backup.local import LocalBackend
from noa_core.backup.maintenance import verify
from noa_core.backup.repository import Repository
from noa_core.backup.restore import restore
from noa_core.backup.snapshots import backup

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from noa_core.backup.local import LocalBackend
    from noa_core.backup.repository import Repository
    from noa_core.backup.snapshots import backup
    repo = Repository.open(LocalBackend(Path(sys.argv[1])), None)
    r = backup(repo, Path(sys.argv[2]), workers=1)
    print("finished", r.snapshot.id, flush=True)
""")


def test_kill_9_during_backup_leaves_previous_snapshots_and_next_run_completes(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    repo = Repository.init(LocalBackend(tmp_path / "repo"), None, encrypt=False, pack_bytes=256 * 1024)
    first = backup(repo, tree)
    # a lot of new, incompressible data so the second backup writes many packs (one fsync each)
    bulk = tree / "bulk"
    bulk.mkdir()
    for i in range(48):
        (bulk / f"blob{i:02d}.bin").write_bytes(os.urandom(1024 * 1024))
    packs_before = set((tmp_path / "repo" / "data").rglob("*"))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "repo"), str(tree)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = set((tmp_path / "repo" / "data").rglob("*")) - packs_before
            if len([p for p in new if p.is_file() and not p.name.startswith(".tmp-")]) >= 8:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert b"finished" not in out, "the backup ended before it was killed: make the tree bigger"
    assert proc.returncode == -signal.SIGKILL

    reopened = Repository.open(LocalBackend(tmp_path / "repo"), None)
    assert [s.id for s in reopened.snapshots()] == [first.snapshot.id]        # no half snapshot
    assert list(reopened.backend.list("locks/"))                              # the killed one's lock is left...
    restore(reopened, first.snapshot.id, tmp_path / "old")                    # ...the old snapshot restores
    assert (tmp_path / "old" / "extra" / "big.bin").read_bytes() == (tree / "extra" / "big.bin").read_bytes()
    assert not (tmp_path / "old" / "bulk").exists()

    second = backup(reopened, tree)                                            # stale lock removed, completes
    assert second.packs_recovered >= 8                                         # reuses what was uploaded
    assert second.blobs_new < 48
    assert [s.id for s in reopened.snapshots()] == [first.snapshot.id, second.snapshot.id]
    assert verify(reopened).ok
    restore(reopened, "latest", tmp_path / "new")
    assert_same_tree(tree, tmp_path / "new")
