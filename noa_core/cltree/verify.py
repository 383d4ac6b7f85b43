"""Verifying the CL tree: every entry, every link, and the tree heads kept outside the log.

Detected: an edited entry (its id no longer matches its content), a removed entry (a gap
in ``seq``, or a parent link that no longer points at the entry before), a reordered
entry (``seq`` is hashed into the id; the head link names the wrong entry), a truncated
log (fewer entries than the last checkpoint) and a rewritten history (the root of the
first ``size`` entries differs from a checkpoint's root).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.cltree.checkpoints import Checkpoint, read_checkpoints
from noa_core.cltree.entry import entry_id
from noa_core.cltree.merkle import EMPTY_ROOT, Frontier, prefix_roots


@dataclass(frozen=True)
class Problem:
    seq: int | None
    id: str | None
    what: str

    def line(self) -> str:
        where = f"entry seq {self.seq}" if self.seq is not None else "log"
        if self.id:
            where += f" ({self.id[:12]})"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    root: str
    checkpoint: Checkpoint | None
    checkpoints_checked: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {"ok": self.ok, "entries": self.entries, "root": self.root,
                "checkpoint": {"size": cp.size, "root": cp.root, "at": cp.at} if cp else None,
                "checkpoints_checked": self.checkpoints_checked,
                "problems": [{"seq": p.seq, "id": p.id, "problem": p.what, "line": p.line()} for p in self.problems],
                "warnings": list(self.warnings)}


def verify_rows(rows: list[Any], cltree_dir: Path, frontier: tuple[int, str] | None = None,
                extra: Sequence[Checkpoint] = ()) -> VerifyReport:
    """Check rows (``seq, id, kind, subject, payload, parents, created_at``; seq order) and checkpoints.

    ``frontier`` is the stored ``(size, hashes)`` appends fold new entries into; it must be
    the frontier of the entries, or the next tree heads would be wrong. ``extra`` are tree
    heads kept elsewhere (the ones stored in backup snapshots), checked like the file's.
    """
    problems: list[Problem] = []
    ids: list[str] = []
    last_of_subject: dict[str, str] = {}
    expected_seq = 1
    prev_id: str | None = None
    for row in rows:
        seq, stored_id = int(row.seq), str(row.id)
        if seq != expected_seq:
            if seq > expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                problems.append(Problem(seq, stored_id, f"entries seq {missing} are missing (removed)"))
            else:
                problems.append(Problem(seq, stored_id, f"out of order: expected seq {expected_seq}"))
        expected_seq = seq + 1
        try:
            payload = json.loads(row.payload)
            parents = json.loads(row.parents)
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise ValueError("parents is not a list of ids")
        except (ValueError, TypeError) as exc:
            problems.append(Problem(seq, stored_id, f"unreadable entry ({exc})"))
            ids.append(stored_id)
            prev_id = stored_id
            continue
        computed = entry_id(seq, row.kind, row.subject, payload, parents, row.created_at)
        if computed != stored_id:
            problems.append(Problem(seq, stored_id, f"edited: its content hashes to {computed[:12]}, "
                                                    f"not to its id"))
        expected_parents = [prev_id] if prev_id else []
        same = last_of_subject.get(row.subject)
        if same is not None and same not in expected_parents:
            expected_parents.append(same)
        if parents != expected_parents:
            if prev_id and (not parents or parents[0] != prev_id):
                named = parents[0][:12] if parents else "nothing"
                problems.append(Problem(seq, stored_id, f"its head parent is {named} but the entry before it is "
                                                        f"{prev_id[:12]} (an entry before it was removed, "
                                                        f"replaced or reordered)"))
            else:
                problems.append(Problem(seq, stored_id, "its parent links do not match the log "
                                                        f"(expected {[p[:12] for p in expected_parents]})"))
        ids.append(stored_id)
        last_of_subject[row.subject] = stored_id
        prev_id = stored_id

    checkpoints, unreadable = read_checkpoints(cltree_dir)
    checkpoints += list(extra)
    warnings = list(unreadable)
    wanted = {cp.size for cp in checkpoints} | {len(ids)}
    roots: dict[int, str] = {0: EMPTY_ROOT}
    for size, root in prefix_roots(ids):
        if size in wanted:
            roots[size] = root
    current_root = roots[len(ids)]
    last = max(checkpoints, key=lambda c: (c.size, c.line)) if checkpoints else None
    cut = [cp for cp in checkpoints if cp.size > len(ids)]
    if cut:
        cp = max(cut, key=lambda c: c.size)
        problems.append(Problem(None, None, f"truncated: the log has {len(ids)} entries but the checkpoint of "
                                            f"{cp.at or 'line ' + str(cp.line)} says {cp.size} "
                                            f"(entries seq {len(ids) + 1}..{cp.size} are gone)"))
    rewritten = [cp for cp in checkpoints if cp.size <= len(ids) and roots.get(cp.size) != cp.root]
    if rewritten:
        cp = min(rewritten, key=lambda c: c.size)
        problems.append(Problem(cp.size, ids[cp.size - 1] if cp.size else None,
                                f"history rewritten: the root of the first {cp.size} entries differs from the "
                                f"checkpoint of {cp.at or 'line ' + str(cp.line)} ({len(rewritten)} checkpoint(s) "
                                f"disagree)"))
    if frontier is not None:
        size, hashes = frontier  # read before the rows: appends since then may have made the log longer
        if size > len(ids):
            problems.append(Problem(None, None, f"the stored Merkle frontier covers {size} entries but the log has "
                                                f"{len(ids)}"))
        elif hashes != Frontier.of(ids[:size]).dumps():
            problems.append(Problem(None, None, "the stored Merkle frontier does not match the entries (edited); "
                                                "the next tree heads would be wrong"))
    if not checkpoints:
        warnings.append("no checkpoint yet: truncation cannot be detected until one is written")
    return VerifyReport(entries=len(ids), root=current_root, checkpoint=last, checkpoints_checked=len(checkpoints),
                        problems=tuple(problems), warnings=tuple(warnings))
