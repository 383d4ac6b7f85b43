"""Structured logs: one JSON object per line under ``NOA_HOME/logs/``, each with its run id.

The run id comes from :func:`run_context` (the server sets it per request; flows set it to
their Prefect flow run id), so a log line, a trace span and a Prefect run can be joined.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("noa_run_id", default=None)
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def current_run_id() -> str | None:
    return _RUN_ID.get()


@contextlib.contextmanager
def run_context(run_id: str | None) -> Iterator[None]:
    """Every log line (and span) written inside carries ``run_id``."""
    token = _RUN_ID.set(run_id)
    try:
        yield
    finally:
        _RUN_ID.reset(token)


def log_record_dict(record: logging.LogRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
        "run_id": getattr(record, "run_id", None) or current_run_id(),
    }
    for key, value in vars(record).items():
        if key not in _RESERVED and key not in data and not key.startswith("_"):
            data[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        data["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    return data


class JsonLinesHandler(logging.Handler):
    """Appends JSON lines to ``directory/<name>-YYYYMMDD.jsonl`` (UTC day)."""

    def __init__(self, directory: Path, name: str = "noa") -> None:
        super().__init__()
        self.directory = Path(directory)
        self.name_prefix = name
        self._io_lock = threading.Lock()
        self._fh: Any = None
        self._fh_path: Path | None = None

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{self.name_prefix}-{when:%Y%m%d}.jsonl"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps(log_record_dict(record), default=str, ensure_ascii=False)
            path = self.path_for(datetime.fromtimestamp(record.created, UTC))
            with self._io_lock:
                if self._fh is None or self._fh_path != path:
                    if self._fh is not None:
                        self._fh.close()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open, closed in close()
                    self._fh_path = path
                self._fh.write(line + "\n")
                self._fh.flush()
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)

    def close(self) -> None:
        with self._io_lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
        super().close()


def json_logger(logs_dir: Path, name: str = "noa", *, level: int = logging.INFO) -> logging.Logger:
    """A logger writing JSON lines to ``logs_dir`` (one handler per directory, not propagated).

    Loggers are named after the directory so two NOA homes in one process never mix.
    """
    logger = logging.getLogger(f"noa.json.{name}.{Path(logs_dir).resolve()}")
    if not any(isinstance(h, JsonLinesHandler) for h in logger.handlers):
        logger.addHandler(JsonLinesHandler(Path(logs_dir), name))
    logger.setLevel(level)
    logger.propagate = False
    return logger


def read_log_lines(logs_dir: Path, name: str = "noa") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(Path(logs_dir).glob(f"{name}-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out
