"""The merge journal: where D and the sandboxes were before a merge moved them, and the roll-back.

:class:`MergeJournal` records, before D moves, where D and the sandboxes were. A merge
that dies after moving D (a killed process) is rolled back by :func:`recover` at the
start of the next merge: D moves only as part of a merge that finished.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from noa_core.sandbox.merge.errors import MergeError
from noa_core.sandbox.repository import WorkspaceRepo
from noa_core.sandbox.sandboxes import Sandbox


@dataclass(frozen=True)
class JournalEntry:
    run_id: str
    d_old: str
    d_new: str
    sandboxes: dict[str, str]          # sandbox -> head before it is reset onto d_new
    created: str
    targets: dict[str, str] = field(default_factory=dict)  # sandbox -> where it moves, when not d_new
                                                           # (new D + the drops the merge held)


class MergeJournal:
    """``repo/noa/merge-journal.json``: present only while a merge is moving refs.

    Written (fsynced) before D moves; removed once the merge committed. Found at the
    start of the next merge, it means the last one died half-way: :func:`recover`
    puts every ref it moved back.
    """

    def __init__(self, repo: WorkspaceRepo) -> None:
        self.path = repo.path / "noa" / "merge-journal.json"

    def begin(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".merge-journal-{uuid.uuid4().hex}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(asdict(entry), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def read(self) -> JournalEntry | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise MergeError(f"{self.path}: unreadable merge journal ({exc}); inspect it and remove it") from None
        return JournalEntry(**data)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(repo: WorkspaceRepo, entry: JournalEntry) -> list[str]:
    """Put back every ref ``entry`` says a merge moved (only refs still where that merge left them)."""
    actions = []
    for name, old in entry.sandboxes.items():
        target = entry.targets.get(name, entry.d_new)
        if (old != target and repo.head(name) == target
                and repo.move_to(name, old, expected=target, reason=f"noa: merge {entry.run_id} rolled back")):
            actions.append(f"sandbox {name} put back to {old[:12]}")
    head = repo.head(Sandbox.D)
    if head == entry.d_new and entry.d_new != entry.d_old:
        if not repo.move_to(Sandbox.D, entry.d_old, expected=entry.d_new,
                            reason=f"noa: merge {entry.run_id} rolled back"):
            raise MergeError(f"D could not be put back to {entry.d_old[:12]}: it moved meanwhile")
        actions.append(f"D put back from {entry.d_new[:12]} to {entry.d_old[:12]}")
    elif head not in (entry.d_old, entry.d_new):
        actions.append(f"D is at {head[:12]}, neither before nor after merge {entry.run_id}: left alone")
    return actions


def recover(repo: WorkspaceRepo) -> list[str]:
    """Roll back a merge that died after moving refs (see :class:`MergeJournal`); [] when none did."""
    journal = MergeJournal(repo)
    entry = journal.read()
    if entry is None:
        return []
    actions = restore(repo, entry) or [f"merge {entry.run_id} had not moved any ref"]
    journal.clear()
    return [f"recovered interrupted merge {entry.run_id}: " + "; ".join(actions)]
