"""The storage package's error, shared by the engine factory (:mod:`noa_core.storage.database`)
and the migrations (:mod:`noa_core.storage.migrate`), so neither imports the other for it."""

from __future__ import annotations

from noa_core.errors import NoaError


class DatabaseError(NoaError):
    """The registry database could not be opened or used."""


__all__ = ["DatabaseError"]
