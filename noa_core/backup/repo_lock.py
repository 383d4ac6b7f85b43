"""The repository's lock (``locks/<id>``): many shared holders (backup, restore) or one
exclusive (prune); a holder gone from this host, or not refreshed elsewhere for
``LOCK_STALE_S``, no longer counts."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from noa_core.backup.interface import BackupBackend, BackupError, ObjectMissing

__all__ = ["LOCK_REFRESH_S", "LOCK_STALE_S", "RepoLock"]

LOCK_STALE_S = 30 * 60
LOCK_REFRESH_S = 5 * 60


class RepoLock:
    """``locks/<id>``: many shared holders (backup, restore) or one exclusive (prune)."""

    def __init__(self, backend: BackupBackend, exclusive: bool) -> None:
        self.backend = backend
        self.exclusive = exclusive
        self.key = f"locks/{uuid.uuid4().hex}"
        self.host = socket.gethostname()
        self._last = 0.0

    def _doc(self) -> bytes:
        return json.dumps({"exclusive": self.exclusive, "hostname": self.host, "pid": os.getpid(),
                           "time": time.time()}).encode()

    def _others(self) -> list[tuple[str, dict]]:
        found = []
        for info in self.backend.list("locks/"):
            if info.key == self.key:
                continue
            try:
                doc = json.loads(self.backend.get(info.key))
            except (ObjectMissing, ValueError):
                continue
            if self._stale(doc):
                self.backend.delete(info.key)
                continue
            found.append((info.key, doc))
        return found

    def _stale(self, doc: dict) -> bool:
        """On this host: the holder's pid is gone. Elsewhere: not refreshed for LOCK_STALE_S."""
        if doc.get("hostname") == self.host:
            try:
                os.kill(int(doc.get("pid", 0)), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError):
                return False
            return False
        return time.time() - float(doc.get("time", 0)) > LOCK_STALE_S

    def _conflicts(self) -> list[dict]:
        return [d for _k, d in self._others() if self.exclusive or d.get("exclusive")]

    def acquire(self) -> None:
        blocking = self._conflicts()
        if blocking:
            raise BackupError(_locked_message(blocking[0]))
        self.backend.put(self.key, self._doc())
        self._last = time.monotonic()
        blocking = self._conflicts()
        if blocking:  # lost a race with another writer: back off
            self.backend.delete(self.key)
            raise BackupError(_locked_message(blocking[0]))

    def refresh(self) -> None:
        if time.monotonic() - self._last > LOCK_REFRESH_S:
            self.backend.put(self.key, self._doc())
            self._last = time.monotonic()

    def release(self) -> None:
        self.backend.delete(self.key)


def _locked_message(doc: dict) -> str:
    kind = "an exclusive (prune)" if doc.get("exclusive") else "a shared (backup/restore)"
    return f"the backup repository is locked by {kind} lock of pid {doc.get('pid')} on {doc.get('hostname')}"
