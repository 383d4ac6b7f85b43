"""Read-only views of the workspace registry: roots with SOT totals, one file's version history."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noa_core.errors import BadInput

if TYPE_CHECKING:
    from noa_core.config import NoaSettings


def roots_status(settings: NoaSettings) -> list[dict[str, Any]]:
    from noa_core.storage.database import open_database
    from noa_core.workspace.store import list_roots

    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            return list_roots(conn)
    finally:
        engine.dispose()


def file_history(settings: NoaSettings, file: Path) -> dict[str, Any]:
    """Versions of ``file`` under the scanned root that holds it (the deepest one)."""
    from noa_core.storage.database import open_database
    from noa_core.workspace.store import list_roots, versions_of

    target = os.fspath(Path(file).expanduser().absolute())
    parent_real = os.path.realpath(os.path.dirname(target))
    target = os.path.join(parent_real, os.path.basename(target))
    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            roots = [r["root"] for r in list_roots(conn) if target.startswith(r["root"].rstrip("/") + "/")]
            if not roots:
                raise BadInput(f"{file}: not under any scanned tree")
            root = max(roots, key=len)
            rel = target[len(root.rstrip("/")) + 1:]
            return {"root": root, "path": rel, "versions": versions_of(conn, root, rel)}
    finally:
        engine.dispose()


def archive_in_use(settings: "NoaSettings") -> set[str]:
    """Hashes of ``NOA_HOME/archive/<hash>`` files that a registered duplicate still needs.

    Any other file in the archive is orphaned (cleanup may list and remove it).
    """
    from noa_core.storage.database import open_database
    from noa_core.workspace.store import referenced_archive_hashes

    engine = open_database(settings)
    try:
        with engine.connect() as conn:
            return referenced_archive_hashes(conn)
    finally:
        engine.dispose()
