"""Health, metrics, retrieval (search), inference and token administration."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from noa_core import __version__ as _version
from noa_core.errors import BadInput
from noa_core.server.auth import TokenInfo
from noa_core.server.deps import require, state_of
from noa_core.server.inference import ModelBusy, ModelUnavailable
from noa_core.server.responses import AUTH, BODY, errors
from noa_core.server.routes_read import cached
from noa_core.server.schemas import (
    ChatIn,
    CompletionIn,
    GenerationOut,
    HealthOut,
    SafeText,
    SearchOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
)

router = APIRouter()


@router.get("/health", response_model=HealthOut, tags=["ops"], summary="Liveness and what is available")
async def health(request: Request) -> HealthOut:
    state = state_of(request)
    flows = state.orchestrator.availability() if state.orchestrator is not None else {}
    return HealthOut(status="ok", version=str(_version), cache=state.cache.backend, prefect=state.orchestrator_status,
                     flows=flows, inference=state.inference.status(),
                     change_log="ok" if state.writes.record_change else "skipped: CL tree not available",
                     plugins=state.plugins)


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics (text exposition format)",
            response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format 0.0.4"}})
async def metrics(request: Request) -> Response:
    state = state_of(request)
    data = await run_in_threadpool(state.metrics.exposition)
    return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")


SearchKind = Literal["project", "drop", "file", "symbol", "text"]


@router.get("/v1/search", response_model=SearchOut, responses=errors(*AUTH), tags=["retrieval"],
            dependencies=[Depends(require("read"))],
            summary="Search the registry and the dropped code: file names, Python symbols, text")
async def search(request: Request,
                 q: Annotated[SafeText, Query(min_length=2, max_length=200, description="case-insensitive")],
                 kind: Annotated[list[SearchKind] | None, Query(description="restrict to these kinds")] = None,
                 page: Annotated[int, Query(ge=1, le=10_000)] = 1,
                 per_page: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
    state = state_of(request)
    kinds = tuple(sorted(set(kind))) if kind else None

    def load() -> dict[str, object]:
        records = [("project", p.name, None, p.name) for p in state.registry.list_projects()]
        records += [("drop", d.id, d.id, d.source) for d in state.registry.list_drops()]
        hits = state.search.search(q, kinds=kinds, records=records)
        start = (page - 1) * per_page
        return {"query": q, "total": len(hits), "page": page, "per_page": per_page,
                "items": [h.as_dict() for h in hits[start:start + per_page]]}

    return await cached(state, f"v1:search:{q.lower()}:{kinds}:{page}:{per_page}", 5.0, load)


async def _generate(request: Request, kind: str, payload: object, max_tokens: int, temperature: float) -> GenerationOut:
    state = state_of(request)
    try:
        with state.metrics.inference_seconds.labels(kind).time():
            g = await state.inference.generate(kind, payload, max_tokens=max_tokens, temperature=temperature)
    except (ModelUnavailable, ModelBusy) as exc:
        raise HTTPException(503, exc.one_line()) from None
    return GenerationOut(text=g.text, model=g.model, prompt_tokens=g.prompt_tokens,
                         completion_tokens=g.completion_tokens, seconds=g.seconds, finish_reason=g.finish_reason)


@router.post("/v1/inference/completions", response_model=GenerationOut, responses=errors(*AUTH, *BODY, 503),
             tags=["inference"], dependencies=[Depends(require("read"))],
             summary="Text completion with the local llama.cpp model")
async def completion(request: Request, body: CompletionIn) -> GenerationOut:
    return await _generate(request, "completion", body.prompt, body.max_tokens, body.temperature)


@router.post("/v1/inference/chat", response_model=GenerationOut, responses=errors(*AUTH, *BODY, 503),
             tags=["inference"], dependencies=[Depends(require("read"))],
             summary="Chat completion with the local llama.cpp model")
async def chat(request: Request, body: ChatIn) -> GenerationOut:
    messages = [m.model_dump() for m in body.messages]
    return await _generate(request, "chat", messages, body.max_tokens, body.temperature)


def _token_out(info) -> TokenOut:  # type: ignore[no-untyped-def]
    return TokenOut(**info.as_dict())


@router.get("/v1/tokens", response_model=TokenList, responses=errors(*AUTH), tags=["admin"],
            dependencies=[Depends(require("admin"))], summary="API tokens (never their secrets)")
async def list_tokens(request: Request) -> TokenList:
    infos = await run_in_threadpool(state_of(request).tokens.list)
    return TokenList(items=[_token_out(i) for i in infos])


@router.post("/v1/tokens", status_code=201, response_model=TokenCreated, responses=errors(*AUTH, *BODY, 409),
             tags=["admin"], dependencies=[Depends(require("admin"))], summary="Create a token (shown once)")
async def create_token(request: Request, body: TokenCreate) -> TokenCreated:
    try:
        text, info = await run_in_threadpool(state_of(request).tokens.create, body.name, body.scope,
                                             rate_per_s=body.rate_per_s)
    except BadInput as exc:
        raise HTTPException(409, exc.one_line()) from None
    return TokenCreated(token=text, info=_token_out(info))


@router.delete("/v1/tokens/{name}", response_model=TokenOut, responses=errors(*AUTH, 404, 409), tags=["admin"],
               summary="Revoke a token (not the one making the request)")
async def revoke_token(request: Request,
                       name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")],
                       token: Annotated[TokenInfo, Depends(require("admin"))]) -> TokenOut:
    if name in (token.name, token.key_id):
        raise HTTPException(409, "a token cannot revoke itself (use another admin token or the CLI)")
    try:
        info = await run_in_threadpool(state_of(request).tokens.revoke, name)
    except BadInput as exc:
        raise HTTPException(404, exc.one_line()) from None
    return _token_out(info)
