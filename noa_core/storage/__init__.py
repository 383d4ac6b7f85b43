"""Storage: the registry database (SQLAlchemy 2; SQLite by default, PostgreSQL at scale)."""

from noa_core.storage.database import DatabaseError, create_schema, make_engine
from noa_core.storage.registry import (DropInfo, FileStats, ProjectInfo, Registry, RegistryError, UnknownDrop,
                                       ValidationInfo, make_drop_id)

__all__ = ["DatabaseError", "DropInfo", "FileStats", "ProjectInfo", "Registry", "RegistryError", "UnknownDrop",
           "ValidationInfo", "create_schema", "make_drop_id", "make_engine"]
