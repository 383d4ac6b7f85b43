"""One CL tree entry: its canonical form and its content address.

An entry's ``id`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8)
of ``(seq, kind, subject, payload, parents, created_at)``. Editing any of those fields,
or moving an entry to another ``seq``, changes the id, and the id is named by the
entries after it (their ``parents``), so the change shows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noa_core.errors import BadInput

KINDS: frozenset[str] = frozenset({"drop", "merge", "pipeline", "stage", "build", "release", "rollback",
                                   "backup", "registry", "alert"})
MAX_SUBJECT = 300
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(passw|secret|token|api[_-]?key|credential|private[_-]?key|auth)", re.IGNORECASE)


@dataclass(frozen=True)
class ChangeEntry:
    id: str
    seq: int
    kind: str
    subject: str
    payload: dict
    parents: tuple[str, ...]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "kind": self.kind, "subject": self.subject,
                "payload": self.payload, "parents": list(self.parents), "created_at": self.created_at}


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, non-ASCII kept as UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _scrub(value: Any) -> Any:
    """Payloads hold no secrets: values under secret-looking keys are replaced."""
    if isinstance(value, Mapping):
        return {str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "", False) else _scrub(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def normalize_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-trip of ``payload`` (tuples become lists, paths strings), secrets redacted."""
    if not isinstance(payload, Mapping):
        raise BadInput(f"a change payload must be a mapping, got {type(payload).__name__}")
    try:
        text = json.dumps(_scrub(payload), default=str, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"change payload is not JSON: {exc}") from None
    return json.loads(text)


def check_kind_subject(kind: str, subject: str) -> None:
    if kind not in KINDS:
        raise BadInput(f"unknown change kind {kind!r} (one of {', '.join(sorted(KINDS))})")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise BadInput(f"a change subject must be 1..{MAX_SUBJECT} characters")


def hashed_fields(seq: int, kind: str, subject: str, payload: Mapping[str, Any], parents: tuple[str, ...] | list[str],
                  created_at: str) -> str:
    return canonical_json({"seq": seq, "kind": kind, "subject": subject, "payload": payload,
                           "parents": list(parents), "created_at": created_at})


def entry_id(seq: int, kind: str, subject: str, payload: Mapping[str, Any], parents: tuple[str, ...] | list[str],
             created_at: str) -> str:
    text = hashed_fields(seq, kind, subject, payload, parents, created_at)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
