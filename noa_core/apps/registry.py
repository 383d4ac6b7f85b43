"""The app registry: owned and external apps, persisted in the registry database.

:class:`AppSpec` (pydantic) validates what a user registers; :class:`AppRecord` (frozen)
is what the rest of NOA reads; :class:`AppRegistry` reads and writes the ``apps`` table
(:mod:`noa_core.apps.models`). Statuses:

* ``registered`` - known, not serving;
* ``serving``    - the service's route sends its traffic here;
* ``stopped``    - owned, shut down by NOA after a switch away from it;
* ``detached``   - external, no longer routed to; NOA never stops what it does not own;
* ``failed``     - the last switch to it failed (``reason`` says why).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from noa_core.apps.models import AppRow
from noa_core.errors import BadInput, NoaError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from noa_core.config import NoaSettings

__all__ = ["KINDS", "STATUSES", "AppRecord", "AppRegistry", "AppSpec", "UnknownApp", "endpoint_hostport"]

KINDS = ("owned", "external")
STATUSES = ("registered", "serving", "stopped", "detached", "failed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class UnknownApp(BadInput):
    """No app of that name is registered."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def endpoint_hostport(url: str) -> str:
    """``http://127.0.0.1:8080`` -> ``127.0.0.1:8080`` (the upstream Caddy dials)."""
    u = urlparse(url)
    return f"{u.hostname}:{u.port or 80}"


class AppSpec(BaseModel):
    """What ``noa apps register`` accepts (the edge: validated, then turned into a row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["owned", "external"]
    endpoint: str | None = None
    project_dir: str | None = None
    health_path: str | None = Field(None, max_length=1024)
    owner: str = Field("", max_length=200)
    service: str | None = None

    @field_validator("name", "service")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("letters, digits, '.', '_' or '-', at most 63, starting with a letter or digit")
        return v

    @field_validator("health_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or any(c.isspace() for c in v)):
            raise ValueError("must start with '/' and hold no spaces")
        return v

    @model_validator(mode="after")
    def _target(self) -> AppSpec:
        if self.kind == "external":
            if not self.endpoint or self.project_dir:
                raise ValueError("an external app needs an endpoint URL (and no project directory)")
            u = urlparse(self.endpoint)
            if u.scheme != "http" or not u.hostname or u.path not in ("", "/") or u.query or u.username:
                raise ValueError(f"endpoint must look like http://host:port (got {self.endpoint!r})")
        else:
            if not self.project_dir or self.endpoint:
                raise ValueError("an owned app needs a project directory (and no endpoint)")
        return self


@dataclass(frozen=True)
class AppRecord:
    name: str
    kind: str
    service: str
    endpoint: str | None
    project_dir: str | None
    health_path: str
    owner: str
    status: str
    reason: str = ""
    instance: Mapping[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        return self.kind == "owned"

    @property
    def upstream(self) -> str | None:
        """``host:port`` where it answers now (owned: only while its instance runs)."""
        if not self.owned:
            return endpoint_hostport(self.endpoint or "")
        return str(self.instance["endpoint"]) if self.instance else None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "service": self.service, "endpoint": self.endpoint,
                "project_dir": self.project_dir, "health_path": self.health_path, "owner": self.owner,
                "status": self.status, "reason": self.reason, "upstream": self.upstream,
                "instance": dict(self.instance) if self.instance else None,
                "created_at": self.created_at, "updated_at": self.updated_at}


def _record(row: AppRow) -> AppRecord:
    return AppRecord(row.name, row.kind, row.service, row.endpoint, row.project_dir, row.health_path, row.owner,
                     row.status, row.reason, json.loads(row.instance) if row.instance else None,
                     row.created_at, row.updated_at)


def parse_spec(**fields: Any) -> AppSpec:
    """An :class:`AppSpec`, or :class:`BadInput` with the first problem on one line."""
    try:
        return AppSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "app"
        raise BadInput(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


class AppRegistry:
    """The ``apps`` table. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, settings: NoaSettings | None = None, *, engine: Engine | None = None) -> None:
        if engine is None:
            from noa_core.storage.database import open_database

            assert settings is not None
            engine = open_database(settings)
            self._owns_engine = True
            _ensure_table(engine)
        else:
            self._owns_engine = False
        self.engine = engine

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine) as s, s.begin():
            yield s

    def register(self, spec: AppSpec) -> AppRecord:
        health = spec.health_path
        project_dir = None
        if spec.kind == "owned":
            project_dir, manifest_health = _check_project(Path(spec.project_dir or ""))
            health = health or manifest_health
        now = _now()
        row = AppRow(name=spec.name, kind=spec.kind, service=spec.service or spec.name,
                     endpoint=spec.endpoint.rstrip("/") if spec.endpoint else None, project_dir=project_dir,
                     health_path=health or "/health", owner=spec.owner, status="registered", reason="",
                     instance=None, created_at=now, updated_at=now)
        with self._session() as s:
            if s.scalar(select(AppRow).where(AppRow.name == spec.name)) is not None:
                raise BadInput(f"app {spec.name!r} is already registered")
            s.add(row)
            s.flush()
            return _record(row)

    def get(self, name: str) -> AppRecord:
        with self._session() as s:
            row = s.scalar(select(AppRow).where(AppRow.name == name))
            if row is None:
                raise UnknownApp(f"no app named {name!r} is registered (see noa apps list)")
            return _record(row)

    def list(self, *, service: str | None = None) -> list[AppRecord]:
        with self._session() as s:
            q = select(AppRow).order_by(AppRow.service, AppRow.name)
            if service is not None:
                q = q.where(AppRow.service == service)
            return [_record(r) for r in s.scalars(q)]

    def serving(self, service: str) -> AppRecord | None:
        found = [a for a in self.list(service=service) if a.status == "serving"]
        return found[0] if found else None

    def set_status(self, name: str, status: str, reason: str = "", *,
                   instance: Mapping[str, Any] | None | Literal["keep"] = "keep") -> AppRecord:
        if status not in STATUSES:
            raise NoaError(f"unknown app status {status!r}")
        with self._session() as s:
            row = s.scalar(select(AppRow).where(AppRow.name == name))
            if row is None:
                raise UnknownApp(f"no app named {name!r} is registered")
            row.status, row.reason, row.updated_at = status, reason, _now()
            if instance != "keep":
                row.instance = json.dumps(dict(instance), sort_keys=True) if instance else None
            s.flush()
            return _record(row)

    def unregister(self, name: str) -> None:
        with self._session() as s:
            row = s.scalar(select(AppRow).where(AppRow.name == name))
            if row is None:
                raise UnknownApp(f"no app named {name!r} is registered")
            if row.status == "serving":
                raise BadInput(f"app {name!r} is serving: switch away from it first")
            s.delete(row)


def _ensure_table(engine: Engine) -> None:
    """Migrate to the newest script when ``apps`` is missing (a database opened at an older
    ``migrate.HEAD`` constant than the scripts on disk stops at the fast path)."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table(AppRow.__tablename__):
        from noa_core.storage.migrate import script_head, upgrade

        upgrade(engine, script_head())


def _check_project(project_dir: Path) -> tuple[str, str]:
    """The resolved project directory and its manifest's health path; BadInput when it cannot run."""
    from noa_core.manifest import MANIFEST_FILENAME, load_manifest

    d = project_dir.expanduser().resolve()
    if not (d / MANIFEST_FILENAME).is_file():
        raise BadInput(f"{project_dir}: no {MANIFEST_FILENAME} (an owned app is a project NOA can start)")
    m = load_manifest(d / MANIFEST_FILENAME)
    if m.run.command is None:
        raise BadInput(f"{project_dir}: {MANIFEST_FILENAME} has no run.command: NOA cannot start it")
    return str(d), m.run.health.path
