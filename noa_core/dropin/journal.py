"""The processed-state journal: which item (by content key) is where, and what became of it.

``drop-in/.journal.jsonl`` is append-only JSON lines, one event each, flushed and fsynced
before the watcher acts on it; a torn last line (power loss) is skipped on load.  Events:

``taken``        the item was moved into ``.work/<key>/`` (attempt n; a new drop starts a
                 new generation: its interrupt count is reset)
``started``      a code_drop flow run was created for attempt n (its flow run id)
``interrupted``  the watcher found attempt n's run abandoned by a watcher that died;
                 the next attempt follows
``released``     the watcher was stopped on purpose while attempt n ran (its run is
                 cancelled); the flag stays until the next attempt begins
``resumed``      a released attempt is replaced by the next one, which does not count
                 as an interruption
``finished``     the outcome (processed / failed / quarantined), where the item went, the
                 reason and the report; ``retryable`` says whether dropping the same
                 content again runs it again (transient failures only)

Exactly-once comes from the order of operations in the service: an item is moved out of
the user's folder into ``.work/<key>/`` before ``taken`` is written (recovery adopts a
``.work`` entry the journal lacks), a run is created with an idempotency key
``<key>:<attempt>`` before ``started`` is written (so a crash in between finds the same
run again, not a second one), and ``finished`` is written before the item is moved to its
outcome folder (recovery repeats the move, which is idempotent).  A ``finished`` key is
never run again unless it is retryable and dropped again.

The file is compacted (rewritten as one ``snapshot`` event per key) when it grows past
``compact_after`` lines.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

State = Literal["taken", "started", "finished"]
Outcome = Literal["processed", "failed", "quarantined"]


@dataclass
class ItemRecord:
    """Everything the journal knows about one key (the fold of its events)."""

    key: str
    name: str = ""
    kind: str = ""
    state: State = "taken"
    attempt: int = 1
    run_id: str | None = None
    interrupts: int = 0
    released: bool = False
    outcome: Outcome | None = None
    reason: str = ""
    dest: str | None = None
    report_path: str | None = None
    retryable: bool = False
    run_ids: list[str] = field(default_factory=list)
    taken_at: str = ""
    finished_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state == "finished"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Journal:
    """Load the journal, fold it into :class:`ItemRecord` s, append events durably."""

    def __init__(self, path: Path, compact_after: int = 20_000) -> None:
        self.path = path
        self.compact_after = compact_after
        self.records: dict[str, ItemRecord] = {}
        self.skipped_lines = 0
        self._lines = 0
        self._load()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends
        if self._lines > self.compact_after:
            self.compact()

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                self._lines += 1
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                    if not isinstance(event, dict) or "key" not in event or "ev" not in event:
                        raise ValueError("not an event")
                    self._apply(event)
                except (ValueError, TypeError, KeyError):
                    self.skipped_lines += 1

    def _apply(self, ev: dict[str, Any]) -> ItemRecord:
        key = str(ev["key"])
        kind = ev["ev"]
        if kind == "snapshot":
            rec = ItemRecord(**{k: v for k, v in ev["record"].items() if k in ItemRecord.__dataclass_fields__})
            self.records[key] = rec
            return rec
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = ItemRecord(key=key)
        if kind == "taken":
            rec.name, rec.kind = ev.get("name", rec.name), ev.get("kind", rec.kind)
            rec.state, rec.attempt, rec.run_id = "taken", int(ev.get("attempt", 1)), None
            rec.interrupts, rec.released = 0, False
            rec.outcome, rec.reason, rec.dest, rec.report_path, rec.retryable = None, "", None, None, False
            rec.taken_at, rec.finished_at = ev.get("t", ""), ""
        elif kind == "started":
            rec.state, rec.attempt, rec.run_id = "started", int(ev.get("attempt", rec.attempt)), ev.get("run_id")
            if rec.run_id and rec.run_id not in rec.run_ids:
                rec.run_ids.append(rec.run_id)
        elif kind == "interrupted":
            rec.state, rec.run_id, rec.released = "taken", None, False
            rec.interrupts += 1
            rec.attempt = int(ev.get("next_attempt", rec.attempt + 1))
        elif kind == "released":  # stays set until the next attempt begins
            rec.released = True
        elif kind == "resumed":
            rec.state, rec.run_id, rec.released = "taken", None, False
            rec.attempt = int(ev.get("next_attempt", rec.attempt + 1))
        elif kind == "finished":
            rec.state = "finished"
            rec.outcome = ev.get("outcome")
            rec.reason = ev.get("reason", "")
            rec.dest = ev.get("dest")
            rec.report_path = ev.get("report_path")
            rec.retryable = bool(ev.get("retryable", False))
            rec.finished_at = ev.get("t", "")
            rec.extra = dict(ev.get("extra") or {})
            if ev.get("run_id"):
                rec.run_id = ev["run_id"]
        else:
            raise ValueError(f"unknown journal event {kind!r}")
        return rec

    def get(self, key: str) -> ItemRecord | None:
        return self.records.get(key)

    def __iter__(self) -> Iterator[ItemRecord]:
        return iter(list(self.records.values()))

    def unfinished(self) -> list[ItemRecord]:
        return [r for r in self.records.values() if not r.finished]

    # ------------------------------------------------------------------ writing
    def append(self, key: str, ev: str, **fields: Any) -> ItemRecord:
        event = {"t": _now_iso(), "key": key, "ev": ev, **fields}
        rec = self._apply(event)
        self._fh.write(json.dumps(event, sort_keys=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._lines += 1
        if self._lines > self.compact_after:
            self.compact()
        return rec

    def taken(self, key: str, name: str, kind: str, attempt: int) -> ItemRecord:
        return self.append(key, "taken", name=name, kind=kind, attempt=attempt)

    def started(self, key: str, attempt: int, run_id: str) -> ItemRecord:
        return self.append(key, "started", attempt=attempt, run_id=run_id)

    def interrupted(self, key: str, run_id: str | None, next_attempt: int) -> ItemRecord:
        return self.append(key, "interrupted", run_id=run_id, next_attempt=next_attempt)

    def released(self, key: str, run_id: str | None) -> ItemRecord:
        return self.append(key, "released", run_id=run_id)

    def resumed(self, key: str, run_id: str | None, next_attempt: int) -> ItemRecord:
        """A released (gracefully stopped) attempt is replaced by the next one."""
        return self.append(key, "resumed", run_id=run_id, next_attempt=next_attempt)

    def finished(self, key: str, outcome: Outcome, *, reason: str, dest: str | None, report_path: str | None,
                 retryable: bool, run_id: str | None, extra: dict[str, Any] | None = None) -> ItemRecord:
        return self.append(key, "finished", outcome=outcome, reason=reason, dest=dest, report_path=report_path,
                           retryable=retryable, run_id=run_id, extra=extra or {})

    def compact(self) -> None:
        """Rewrite the journal as one snapshot per key (atomic rename)."""
        tmp = self.path.with_name(self.path.name + ".compact")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"t": _now_iso(), "key": rec.key, "ev": "snapshot", "record": asdict(rec)}) + "\n" for rec in self.records.values())
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._lines = len(self.records)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ItemRecord", "Journal", "Outcome", "State"]
