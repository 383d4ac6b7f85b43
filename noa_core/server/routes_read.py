"""The read flow: registry, drops and reports through the cache (cache-aside)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from noa_core.results import DropReport
from noa_core.server.deps import require, state_of
from noa_core.server.responses import AUTH, errors
from noa_core.server.schemas import (
    DROP_ID_PATTERN,
    NAME_PATTERN,
    DropList,
    DropOut,
    ProjectDetail,
    ProjectList,
    ProjectOut,
    ReleaseList,
    ReleaseSummary,
    ReportList,
    ReportRef,
)
from noa_core.server.state import ServerState
from noa_core.storage.registry import DropInfo, ProjectInfo, UnknownDrop

TTL_PROJECTS = 30.0
TTL_DROPS = 5.0  # drops are also written by flows outside the API: keep their entries short-lived
TTL_REPORTS = 300.0  # keyed by the file's mtime, so never stale

router = APIRouter(prefix="/v1", tags=["read"])
_read = Depends(require("read"))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def project_out(p: ProjectInfo) -> dict[str, Any]:
    return ProjectOut(id=p.id, name=p.name, root_commits=list(p.root_commits), created=_iso(p.created) or "").model_dump()


def drop_out(d: DropInfo) -> dict[str, Any]:
    return DropOut(id=d.id, project_id=d.project_id, source=d.source, kind=d.kind, sandbox=d.sandbox, commit=d.commit,
                   confidence=d.confidence, status=d.status, created=_iso(d.created) or "", finished=_iso(d.finished),
                   file_count=d.file_count, total_bytes=d.total_bytes, tree_hash=d.tree_hash,
                   has_report=bool(d.report_path)).model_dump()


async def cached(state: ServerState, key: str, ttl: float, load: Callable[[], Any]) -> Response:
    """Cache-aside: the cache's bytes on a hit; on a miss, load from the database, fill, answer."""
    data = state.cache.get(key)
    hit = data is not None
    if data is None:
        value = await run_in_threadpool(load)
        data = json.dumps(value, separators=(",", ":"), default=str).encode()
        state.cache.set(key, data, ttl)
    return Response(data, media_type="application/json", headers={"X-Cache": "hit" if hit else "miss"})


@router.get("/projects", response_model=ProjectList, responses=errors(*AUTH), dependencies=[_read],
            summary="Registered projects")
async def list_projects(request: Request) -> Response:
    state = state_of(request)

    def load() -> dict[str, Any]:
        items = [project_out(p) for p in state.registry.list_projects()]
        return {"items": items, "total": len(items)}

    return await cached(state, "v1:projects", TTL_PROJECTS, load)


ProjectName = Annotated[str, PathParam(pattern=NAME_PATTERN)]
DropId = Annotated[str, PathParam(pattern=DROP_ID_PATTERN)]


@router.get("/projects/{name}", response_model=ProjectDetail, responses=errors(*AUTH, 404), dependencies=[_read],
            summary="One project and its drops")
async def get_project(request: Request, name: ProjectName) -> Response:
    state = state_of(request)
    project = state.cache.get(f"v1:project:{name}")
    if project is not None:
        return Response(project, media_type="application/json", headers={"X-Cache": "hit"})

    def load() -> dict[str, Any] | None:
        p = state.registry.find_project(name=name)
        if p is None:
            return None
        return {"project": project_out(p), "drops": [drop_out(d) for d in state.registry.list_drops(project_id=p.id)]}

    value = await run_in_threadpool(load)
    if value is None:
        raise HTTPException(404, f"no project named {name!r}")
    data = json.dumps(value, separators=(",", ":")).encode()
    state.cache.set(f"v1:project:{name}", data, TTL_DROPS)
    return Response(data, media_type="application/json", headers={"X-Cache": "miss"})


@router.get("/drops", response_model=DropList, responses=errors(*AUTH), dependencies=[_read], summary="Drops, newest first")
async def list_drops(request: Request,
                     project_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    state = state_of(request)

    def load() -> dict[str, Any]:
        drops = state.registry.list_drops(project_id=project_id)
        return {"items": [drop_out(d) for d in drops[offset:offset + limit]], "total": len(drops), "limit": limit,
                "offset": offset}

    return await cached(state, f"v1:drops:{project_id}:{limit}:{offset}", TTL_DROPS, load)


@router.get("/drops/{drop_id}", response_model=DropOut, responses=errors(*AUTH, 404), dependencies=[_read],
            summary="One drop")
async def get_drop(request: Request, drop_id: DropId) -> Response:
    state = state_of(request)
    key = f"v1:drops:one:{drop_id}"
    data = state.cache.get(key)
    if data is not None:
        return Response(data, media_type="application/json", headers={"X-Cache": "hit"})
    try:
        value = await run_in_threadpool(lambda: drop_out(state.registry.get_drop(drop_id)))
    except UnknownDrop:
        raise HTTPException(404, f"no drop with id {drop_id!r}") from None
    data = json.dumps(value, separators=(",", ":")).encode()
    state.cache.set(key, data, TTL_DROPS)
    return Response(data, media_type="application/json", headers={"X-Cache": "miss"})


def _reports_dir(state: ServerState) -> Path:
    return state.settings.layout().reports


@router.get("/reports", response_model=ReportList, responses=errors(*AUTH), dependencies=[_read],
            summary="Drop reports under NOA_HOME/reports")
async def list_reports(request: Request) -> Response:
    state = state_of(request)

    def load() -> dict[str, Any]:
        d = _reports_dir(state)
        items = []
        for p in sorted(d.glob("*.json"), key=lambda p: p.name, reverse=True) if d.is_dir() else []:
            st = p.stat()
            items.append(ReportRef(drop_id=p.stem, bytes=st.st_size,
                                   modified=datetime.fromtimestamp(st.st_mtime, UTC).isoformat()).model_dump())
        return {"items": items, "total": len(items)}

    return await cached(state, "v1:reports", TTL_DROPS, load)


@router.get("/reports/{drop_id}", response_model=DropReport, responses=errors(*AUTH, 404), dependencies=[_read],
            summary="A drop's report (the DropReport `noa drop --json` prints)")
async def get_report(request: Request, drop_id: DropId) -> Response:
    state = state_of(request)
    path = _reports_dir(state) / f"{drop_id}.json"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise HTTPException(404, f"no report for {drop_id!r}") from None
    key = f"v1:report:{drop_id}:{mtime}"
    data = state.cache.get(key)
    if data is None:
        try:
            raw = await run_in_threadpool(path.read_bytes)
            report = DropReport.model_validate_json(raw)  # ValidationError is a ValueError
        except (OSError, ValueError):
            raise HTTPException(404, f"no readable report for {drop_id!r}") from None
        data = report.model_dump_json().encode()
        state.cache.set(key, data, TTL_REPORTS)
        return Response(data, media_type="application/json", headers={"X-Cache": "miss"})
    return Response(data, media_type="application/json", headers={"X-Cache": "hit"})


# releases: the deploy flows' stores, NOA_HOME/deploy/releases/<env>/<app>.json (read as files; keyed by mtime)
def _release_files(state: ServerState) -> list[Path]:
    root = state.settings.layout().root / "deploy" / "releases"
    return sorted(root.glob("*/*.json")) if root.is_dir() else []


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@router.get("/releases", response_model=ReleaseList, responses=errors(*AUTH), dependencies=[_read],
            summary="Deployed apps per environment: the active release and the history length")
async def list_releases(request: Request) -> Response:
    state = state_of(request)
    files = await run_in_threadpool(_release_files, state)
    stamp = ",".join(f"{p.parent.name}/{p.stem}:{p.stat().st_mtime_ns}" for p in files if p.exists())
    key = "v1:releases:" + hashlib.sha256(stamp.encode()).hexdigest()[:16]

    def load() -> dict[str, Any]:
        items = []
        for p in files:
            doc = _read_json(p) or {}
            active = doc.get("active") if isinstance(doc.get("active"), dict) else None
            items.append(ReleaseSummary(app=p.stem, env=p.parent.name, active=active,
                                        history=len(doc.get("history") or [])).model_dump())
        return {"items": items, "total": len(items)}

    return await cached(state, key, TTL_REPORTS, load)


@router.get("/releases/{env}/{app}", response_model=dict[str, Any], responses=errors(*AUTH, 404),
            dependencies=[_read], summary="One app's releases in one environment (active and history)")
async def get_release(request: Request, env: Annotated[str, PathParam(pattern=r"^(staging|production)$")],
                      app: ProjectName) -> Response:
    state = state_of(request)
    path = state.settings.layout().root / "deploy" / "releases" / env / f"{app}.json"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise HTTPException(404, f"no releases of {app!r} in {env}") from None
    key = f"v1:release:{env}:{app}:{mtime}"

    def load() -> dict[str, Any]:
        doc = _read_json(path)
        if doc is None:
            raise HTTPException(404, f"no readable releases of {app!r} in {env}")
        return doc

    return await cached(state, key, TTL_REPORTS, load)
