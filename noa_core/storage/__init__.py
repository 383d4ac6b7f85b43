"""Storage: the registry database (SQLAlchemy 2; SQLite by default, PostgreSQL at scale).

Names are imported lazily, so ``noa_core.storage.hashing`` can be used without paying
for SQLAlchemy (the unchanged ``noa workspace scan`` path needs only hashing).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DatabaseError": "noa_core.storage.errors", "create_schema": "noa_core.storage.database",
    "make_engine": "noa_core.storage.database", "open_database": "noa_core.storage.database",
    "DropInfo": "noa_core.storage.registry", "FileStats": "noa_core.storage.registry",
    "ProjectInfo": "noa_core.storage.registry", "Registry": "noa_core.storage.registry",
    "RegistryError": "noa_core.storage.registry", "UnknownDrop": "noa_core.storage.registry",
    "ValidationInfo": "noa_core.storage.registry", "make_drop_id": "noa_core.storage.registry",
}

__all__ = ["DatabaseError", "DropInfo", "FileStats", "ProjectInfo", "Registry", "RegistryError", "UnknownDrop",
           "ValidationInfo", "create_schema", "make_drop_id", "make_engine", "open_database"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'noa_core.storage' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
