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


# ------------------------------------------------------------------ flow runs' logs on disk
_FLOW_LOGS_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("noa_flow_logs_dir", default=None)
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class FlowLogsHandler(JsonLinesHandler):
    """Prefect's run-logger records (``flow_run_id``, ``task_run_id``, names) as JSON lines in the
    logs directory of the NOA_HOME whose flow is running in this context (``flows-YYYYMMDD.jsonl``)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "flows")

    def filter(self, record: logging.LogRecord) -> bool:
        return _FLOW_LOGS_DIR.get() == self.directory and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "run_id", None) is None:
            record.run_id = getattr(record, "flow_run_id", None)
        super().emit(record)


def _attach(directory: Path) -> None:
    """One handler per logs directory on Prefect's run loggers (logging's handler lists are per process)."""
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, FlowLogsHandler) and h.directory == directory for h in logger.handlers):
            logger.addHandler(FlowLogsHandler(directory))


@contextlib.contextmanager
def flow_logs(directory: Path) -> Iterator[None]:
    """Inside (and in the subflows and tasks started inside), Prefect run logs also go to ``directory``."""
    directory = Path(directory).resolve()
    if _FLOW_LOGS_DIR.get() is not None:  # an outer flow already routes them
        yield
        return
    _attach(directory)
    token = _FLOW_LOGS_DIR.set(directory)
    try:
        yield
    finally:
        _FLOW_LOGS_DIR.reset(token)


def logs_in_home(fn: Any) -> Any:
    """For flow functions with a ``home`` parameter (put it under ``@flow``): their run logs, and their
    subflows' and tasks', are also written as JSON lines to ``NOA_HOME/logs/flows-YYYYMMDD.jsonl``."""
    import functools
    import inspect

    signature = inspect.signature(fn)

    def logs_dir(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Path:
        from noa_core.config import NoaSettings

        home = signature.bind_partial(*args, **kwargs).arguments.get("home")
        settings = NoaSettings(home=Path(home)) if home else NoaSettings()
        return settings.layout().root / "logs"

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with flow_logs(logs_dir(args, kwargs)):
                return await fn(*args, **kwargs)
        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with flow_logs(logs_dir(args, kwargs)):
            return fn(*args, **kwargs)
    return run
