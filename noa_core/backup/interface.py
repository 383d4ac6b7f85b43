"""The backup backend port: a flat store of objects addressed by key.

A key is a ``/``-separated relative name such as ``data/3f/3f0a...`` or
``snapshots/<id>``. Every adapter (``local``, ``s3``, ``azure``) implements the same five
operations; :meth:`BackupBackend.put` is atomic: a reader sees either the whole new
object or nothing (a crash mid-put leaves no partial object under the key).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from noa_core.errors import BadInput, NoaError

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class BackupError(NoaError):
    """Base class of every backup error (backend, repository, integrity)."""


class BackendUnavailable(BackupError):
    """The backend cannot be reached or refused our credentials."""


class ObjectMissing(BackupError):
    """A key that should exist does not."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key} is missing from the backup repository")
        self.key = key


class BackupBadInput(BadInput, BackupError):
    """A backup request that NOA refuses (bad path, bad retention, wrong key). Exit 2."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise BackupError(f"invalid object key {key!r}")
    return key


class BackupBackend(ABC):
    """Objects by key. Implementations raise :class:`BackupError` subclasses only."""

    name: str = "backend"

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replacing any previous object)."""

    @abstractmethod
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes (or ``length`` bytes from ``offset``); :class:`ObjectMissing` if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (no order promised)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def describe(self) -> str:
        """Where the repository is, without credentials."""
        return self.name

    def close(self) -> None:  # pragma: no cover - adapters with sessions override
        return None
