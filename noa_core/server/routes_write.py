"""The write flow endpoints (validated bodies; each run-starting write becomes a Prefect deployment run)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from noa_core.events.interface import Event
from noa_core.server.auth import TokenInfo
from noa_core.server.deps import require, state_of
from noa_core.server.orchestrator import Unavailable
from noa_core.server.responses import AUTH, BODY, errors
from noa_core.server.schemas import (
    NAME_PATTERN,
    DeployCreate,
    DropCreate,
    Line,
    MergeCreate,
    PipelineCreate,
    ProjectCreate,
    RollbackCreate,
    RunOut,
    SafeText,
    Strict,
    WriteOut,
)
from noa_core.server.writes import WriteFailed, WriteRequest, project_upsert

router = APIRouter(prefix="/v1", tags=["write"])
_RUN_ERRORS = errors(*AUTH, *BODY, 503)


def _out(request: Request, result: Any, ui_url: str | None = None) -> WriteOut:
    status_url = str(request.url_for("run_status", run_id=result.flow_run_id)) if result.flow_run_id else None
    return WriteOut(id=result.id, kind=result.kind, subject=result.subject, flow_run_id=result.flow_run_id,
                    change_id=result.change_id, steps=result.steps, status_url=status_url, ui_url=ui_url)


async def _run_write(request: Request, token: TokenInfo, kind: str, subject: str, params: dict[str, Any],
                     flow_params: dict[str, Any], *, prefixes: tuple[str, ...] = (), run_name: str | None = None) -> WriteOut:
    state = state_of(request)
    orch = state.orchestrator
    if orch is None:
        raise HTTPException(503, state.orchestrator_status)
    availability = orch.availability()
    if availability.get(kind) != "ok":
        raise HTTPException(503, availability.get(kind, f"skipped: {kind} flows are not served"))
    ui: dict[str, str | None] = {}

    async def submit(write_id: str) -> str:
        ref = await orch.submit(kind, flow_params, idempotency_key=write_id, name=run_name)
        ui["url"] = ref.ui_url
        return ref.flow_run_id

    req = WriteRequest(kind=kind, subject=subject, params=params, token_name=token.name, submit=submit,
                       cancel=orch.cancel, invalidate_prefixes=prefixes)
    try:
        result = await state.writes.run(req)
    except Unavailable as exc:
        raise HTTPException(503, exc.one_line()) from None
    except WriteFailed as exc:
        raise HTTPException(503, f"write undone: {exc.one_line()}") from None
    state.metrics.runs_submitted.labels(kind).inc()
    state.publish_soon(Event(kind=f"{kind}.submitted", subject=subject, payload={"write_id": result.id, **params},
                             run_id=result.flow_run_id))
    return _out(request, result, ui.get("url"))


@router.post("/projects", status_code=201, response_model=WriteOut, responses=errors(*AUTH, *BODY, 503),
             summary="Register a project (or add root commits to it)")
async def create_project(request: Request, body: ProjectCreate,
                         token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    state = state_of(request)
    req = WriteRequest(kind="project", subject=body.name, params=body.model_dump(), token_name=token.name,
                       registry_update=project_upsert(body.name, body.root_commits),
                       invalidate_keys=("v1:projects", f"v1:project:{body.name}"))
    try:
        result = await state.writes.run(req)
    except WriteFailed as exc:
        raise HTTPException(503, f"write undone: {exc.one_line()}") from None
    state.publish_soon(Event(kind="project.registered", subject=body.name, payload={"write_id": result.id}))
    return _out(request, result)


def _home(request: Request) -> str:
    return str(state_of(request).settings.home.resolve())


@router.post("/drops", status_code=202, response_model=WriteOut, responses=_RUN_ERRORS,
             summary="Start a code drop (a `code_drop` flow run)")
async def create_drop(request: Request, body: DropCreate, token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    params = body.model_dump()
    flow = {"source": body.source, "sandbox": body.sandbox.upper(), "use_ai": body.use_ai, "home": _home(request)}
    name = "api-drop-" + body.source.rstrip("/").rsplit("/", 1)[-1][:60]
    return await _run_write(request, token, "drop", body.source, params, flow, prefixes=("v1:drops:",), run_name=name)


@router.post("/pipelines", status_code=202, response_model=WriteOut, responses=_RUN_ERRORS,
             summary="Start the main job for one source (a `noa_pipeline` flow run)")
async def create_pipeline(request: Request, body: PipelineCreate,
                          token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    flow = {"source": body.source, "sandbox": body.sandbox.upper(), "use_ai": body.use_ai, "deploy": body.deploy,
            "home": _home(request)}
    return await _run_write(request, token, "pipeline", body.source, body.model_dump(), flow, prefixes=("v1:drops:",))


@router.post("/merges", status_code=202, response_model=WriteOut, responses=_RUN_ERRORS,
             summary="Merge sandboxes into D-integration (a `sandbox_merge` flow run)")
async def create_merge(request: Request, body: MergeCreate,
                       token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    boxes = sorted(set(body.sandboxes)) if body.sandboxes else None
    flow = {"sandboxes": boxes, "home": _home(request)}
    return await _run_write(request, token, "merge", "+".join(boxes or ["A", "B", "C"]), {"sandboxes": boxes}, flow)


@router.post("/deploys", status_code=202, response_model=WriteOut, responses=_RUN_ERRORS,
             summary="Deploy a project (a `deploy` flow run)")
async def create_deploy(request: Request, body: DeployCreate,
                        token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    flow = {"project_dir": body.project_dir, "env": body.env, "strategy": body.strategy, "app": body.app,
            "home": _home(request)}
    return await _run_write(request, token, "deploy", body.app or body.project_dir, body.model_dump(), flow)


@router.post("/rollbacks", status_code=202, response_model=WriteOut, responses=_RUN_ERRORS,
             summary="Roll an app back (a `rollback` flow run)")
async def create_rollback(request: Request, body: RollbackCreate,
                          token: Annotated[TokenInfo, Depends(require("write"))]) -> WriteOut:
    flow = {"app": body.app, "env": body.env, "home": _home(request)}
    return await _run_write(request, token, "rollback", body.app, body.model_dump(), flow)


@router.get("/runs/{run_id}", response_model=RunOut, name="run_status", responses=errors(*AUTH, 404, 503),
            dependencies=[Depends(require("read"))], tags=["read"], summary="A flow run's state, read from Prefect")
async def run_status(request: Request, run_id: Annotated[UUID, PathParam()]) -> RunOut:
    state = state_of(request)
    if state.orchestrator is None:
        raise HTTPException(503, state.orchestrator_status)
    st = await state.orchestrator.status(str(run_id))
    if st is None:
        raise HTTPException(404, f"no flow run {run_id}")
    return RunOut(flow_run_id=st.flow_run_id, name=st.name, state=st.state, state_name=st.state_name,
                  message=st.message, final=st.final, start_time=st.start_time, end_time=st.end_time,
                  parameters=st.parameters, ui_url=st.ui_url, result=st.result)


class EventIn(Strict):
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,3}$", max_length=80)]
    subject: Annotated[Line, Field(max_length=300)]
    severity: str = Field("info", pattern=r"^(debug|info|warning|error|critical)$")
    payload: dict[str, Any] = Field(default_factory=dict)
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    duration_s: Annotated[float, Field(ge=0, le=10_000_000)] | None = None


class DeliveryOut(BaseModel):
    subscriber: str
    status: str


class EventOut(BaseModel):
    id: str
    deliveries: list[DeliveryOut]


@router.post("/events", status_code=202, response_model=EventOut, responses=errors(*AUTH, *BODY), tags=["events"],
             summary="Publish an event on the bus (flows in other processes report their steps here)")
async def publish_event(request: Request, body: EventIn,
                        token: Annotated[TokenInfo, Depends(require("write"))]) -> EventOut:
    import asyncio
    import json

    state = state_of(request)
    payload = json.loads(json.dumps(body.payload, default=str))
    event = Event(kind=body.kind, subject=body.subject, severity=body.severity, payload=payload,  # type: ignore[arg-type]
                  run_id=body.run_id, duration_s=body.duration_s)
    deliveries = await asyncio.to_thread(state.bus.publish, event)
    return EventOut(id=event.id, deliveries=[DeliveryOut(subscriber=d.subscriber, status=d.status) for d in deliveries])


_ = (NAME_PATTERN, SafeText)
