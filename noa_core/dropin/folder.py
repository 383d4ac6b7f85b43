"""The drop-in folder on disk, and moving an item to where its outcome says.

```
NOA_HOME/drop-in/
  <items dropped by people>
  processed/<item>  <item>.report.json  <item>.report.md
  failed/<item>     <item>.reason.txt  [<item>.report.json  <item>.report.md]
  quarantine/<item> <item>.reason.txt
  .work/<key>/<item>        taken, being run (out of the people's way)
  .runs/<flow-run-id>.json  receipts written by the flow run (outcome, report, refusal)
  .journal.jsonl            the processed-state journal
  .watcher.lock             held by the one watcher of this folder
```
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.errors import NoaError
from noa_core.intake.archive import ARCHIVE_SUFFIXES

OUTCOME_DIRS = {"processed": "processed", "failed": "failed", "quarantined": "quarantine"}


class DropInBusy(NoaError):
    """Another watcher already watches this drop-in folder."""


def _split_suffix(name: str) -> tuple[str, str]:
    low = name.lower()
    for suffix, _fmt in ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    stem, dot, ext = name.rpartition(".")
    if dot and stem and not stem.startswith(".") and len(ext) <= 8:
        return stem, "." + ext
    return name, ""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class DropInFolder:
    root: Path

    @classmethod
    def for_home(cls, home: str | os.PathLike[str]) -> DropInFolder:
        return cls(Path(home).resolve() / "drop-in")

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def work(self) -> Path:
        return self.root / ".work"

    @property
    def runs(self) -> Path:
        return self.root / ".runs"

    @property
    def journal(self) -> Path:
        return self.root / ".journal.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.root / ".watcher.lock"

    def outcome_dir(self, outcome: str) -> Path:
        return self.root / OUTCOME_DIRS[outcome]

    def ensure(self) -> DropInFolder:
        for d in (self.root, self.processed, self.failed, self.quarantine, self.work, self.runs):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------------ the one watcher
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive for the life of a watcher; released by the kernel if it dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise DropInBusy(f"another `noa watch` (pid {holder}) already watches {self.root}") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ items in flight
    def work_dir(self, key: str) -> Path:
        return self.work / key

    def work_item(self, key: str, name: str) -> Path:
        return self.work / key / name

    def take(self, name: str, key: str) -> Path:
        """Move a top-level item into ``.work/<key>/`` (one rename, same filesystem)."""
        dest_dir = self.work_dir(key)
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / name
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "already in .work", str(dest))
        os.rename(self.root / name, dest)
        return dest

    def orphan_work(self, known: set[str]) -> dict[str, str]:
        """``.work/<key>/<name>`` entries the journal does not know (crash right after a take)."""
        found: dict[str, str] = {}
        if not self.work.is_dir():
            return found
        for d in self.work.iterdir():
            if d.name in known or not d.is_dir() or d.is_symlink():
                continue
            entries = [e.name for e in d.iterdir()]
            if len(entries) == 1:
                found[d.name] = entries[0]
        return found

    # ------------------------------------------------------------------ outcomes
    def choose_dest(self, outcome: str, name: str, key: str) -> str:
        """A free name in the outcome folder: ``name``, else ``stem-<key8>.ext``, else ``-2``..."""
        base = self.outcome_dir(outcome)
        stem, ext = _split_suffix(name)
        candidates = [name, f"{stem}-{key[:8]}{ext}"] + [f"{stem}-{key[:8]}-{i}{ext}" for i in range(2, 1000)]
        for cand in candidates:
            if not any(os.path.lexists(base / f"{cand}{s}") for s in ("", ".report.json", ".report.md", ".reason.txt")):
                return f"{OUTCOME_DIRS[outcome]}/{cand}"
        raise NoaError(f"no free name for {name!r} in {base}")

    def finalize(self, key: str, name: str, dest: str, *, report: dict[str, Any] | None, report_md: str | None,
                 reason_text: str | None) -> Path:
        """Move ``.work/<key>/<name>`` to ``dest`` and write its report/reason next to it.

        Idempotent: recovery calls it again when a watcher died half-way.
        """
        target = self.root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        src = self.work_item(key, name)
        if os.path.lexists(src) and not os.path.lexists(target):
            os.rename(src, target)
        if report is not None:
            _write_atomic(target.with_name(target.name + ".report.json"), json.dumps(report, indent=2) + "\n")
        if report_md is not None:
            _write_atomic(target.with_name(target.name + ".report.md"), report_md)
        if reason_text is not None:
            _write_atomic(target.with_name(target.name + ".reason.txt"), reason_text)
        wd = self.work_dir(key)
        try:
            wd.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            # something else is left in .work/<key>: keep it (never delete a person's data)
            pass
        return target

    # ------------------------------------------------------------------ receipts
    def receipt_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def write_receipt(self, run_id: str, data: dict[str, Any]) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        path = self.receipt_path(run_id)
        _write_atomic(path, json.dumps(data, default=str))
        return path

    def read_receipt(self, run_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.receipt_path(run_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def drop_receipt(self, run_id: str) -> None:
        self.receipt_path(run_id).unlink(missing_ok=True)


__all__ = ["OUTCOME_DIRS", "DropInBusy", "DropInFolder"]
