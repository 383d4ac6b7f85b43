"""Settle detection: an item is taken only once it is complete.

An item is complete when either

* its :class:`~noa_core.dropin.items.Signature` (size and mtime; for a directory the
  recursive file count, total size and newest mtime) has not changed for ``settle``
  seconds of observation (mtimes alone are not trusted: ``cp -p`` and ``rsync -t`` copy
  old ones), or
* it was renamed into place from a temporary name (a dotfile or ``*.part``/``*.tmp``/...):
  the watcher saw the temporary entry with the same inode, or watchfiles reported the
  temporary name deleted and the final one added in the same batch.  Such an item is
  complete at once.

An archive that has settled but visibly lacks its end marker (a writer that stalled longer
than the settle interval) is re-checked every ``settle`` seconds and taken anyway once it
has stayed unchanged for ``incomplete_grace`` seconds, so a truncated upload ends in
``failed/`` with a reason instead of waiting forever.

:class:`SettleTracker` keeps no clock of its own: every call takes ``now`` (monotonic
seconds), which makes it deterministic under test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from noa_core.dropin.items import Signature, is_temp_of


@dataclass
class Candidate:
    name: str
    sig: Signature
    changed_at: float
    renamed: bool = False
    incomplete: bool = False
    recheck_at: float = 0.0


@dataclass(frozen=True)
class Ready:
    name: str
    sig: Signature
    renamed: bool
    forced: bool = False  # taken after ``incomplete_grace`` although the archive looked short


@dataclass
class SettleTracker:
    settle: float
    incomplete_grace: float
    candidates: dict[str, Candidate] = field(default_factory=dict)
    _temp_inodes: dict[int, str] = field(default_factory=dict)
    _renamed_hint: dict[str, float] = field(default_factory=dict)

    def note_temporaries(self, inodes: Mapping[int, str]) -> None:
        """Inodes of the temporary entries (dotfiles, ``*.part``...) seen by the latest scan."""
        self._temp_inodes = dict(inodes)

    def note_batch(self, deleted: Iterable[str], added: Iterable[str], now: float) -> None:
        """A batch of filesystem events: a temporary name deleted and its final name added
        together is a rename into place."""
        deleted = list(deleted)
        for name in added:
            if any(is_temp_of(old, name) for old in deleted):
                self._renamed_hint[name] = now

    def observe(self, present: Mapping[str, Signature], now: float) -> None:
        """Record the signatures of the candidate items present now (others are forgotten)."""
        for gone in set(self.candidates) - set(present):
            del self.candidates[gone]
        for name in [n for n, t in self._renamed_hint.items() if now - t > 60.0]:
            del self._renamed_hint[name]
        for name, sig in present.items():
            cand = self.candidates.get(name)
            if cand is None:
                renamed = sig.inode in self._temp_inodes or name in self._renamed_hint
                self._renamed_hint.pop(name, None)
                self.candidates[name] = Candidate(name, sig, now, renamed=renamed)
            elif cand.sig != sig:
                # written to again after it appeared: not a finished rename any more
                cand.sig, cand.changed_at, cand.renamed = sig, now, False
                cand.incomplete, cand.recheck_at = False, 0.0

    def ready(self, now: float) -> list[Ready]:
        """Candidates that are complete by time or by rename, oldest first."""
        out = []
        for cand in sorted(self.candidates.values(), key=lambda c: (c.changed_at, c.name)):
            quiet = now - cand.changed_at
            if cand.incomplete:
                if quiet >= self.incomplete_grace:
                    out.append(Ready(cand.name, cand.sig, cand.renamed, forced=True))
                elif now >= cand.recheck_at:
                    out.append(Ready(cand.name, cand.sig, cand.renamed))
            elif cand.renamed or quiet >= self.settle:
                out.append(Ready(cand.name, cand.sig, cand.renamed))
        return out

    def looks_incomplete(self, name: str, now: float) -> None:
        """The item settled but its content is visibly cut short: check again later."""
        cand = self.candidates.get(name)
        if cand is not None:
            cand.incomplete = True
            cand.renamed = False
            cand.recheck_at = now + max(self.settle, 0.5)

    def forget(self, name: str) -> None:
        self.candidates.pop(name, None)

    def pending(self) -> list[str]:
        return sorted(self.candidates)


__all__ = ["Candidate", "Ready", "SettleTracker"]
