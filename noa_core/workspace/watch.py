"""Watch mode: every batch of file changes goes through the same scan flow (only those paths)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noa_core.workspace.scan import EXCLUDED_DIRS, ScanReport, scan

if TYPE_CHECKING:
    from noa_core.config import NoaSettings


def watch_tree(settings: NoaSettings, root: Path, *, on_report: Callable[[ScanReport], Any],
               record: bool = True, stop: threading.Event | None = None, debounce_ms: int = 200,
               rust_timeout_ms: int = 1000) -> None:
    """Block, scanning each batch of changes under ``root`` until ``stop`` is set (or Ctrl-C)."""
    from watchfiles import watch

    root = Path(root).resolve()
    home = os.fspath(settings.layout().root)

    def wanted(_change: Any, path: str) -> bool:
        if path == home or path.startswith(home + os.sep):
            return False
        rel = os.path.relpath(path, root)
        return not any(part in EXCLUDED_DIRS for part in rel.split(os.sep))

    for changes in watch(root, watch_filter=wanted, debounce=debounce_ms, stop_event=stop,
                         rust_timeout=rust_timeout_ms, yield_on_timeout=False, raise_interrupt=False):
        rels = sorted({os.path.relpath(p, root).replace(os.sep, "/") for _c, p in changes})
        if rels:
            on_report(scan(settings, root, record=record, only=rels))
