"""Orchestration port of the server: create flow runs and read their state from Prefect.

:class:`PrefectOrchestrator` registers one deployment per available NOA flow
(``code_drop``, ``sandbox_merge``, ``noa_pipeline``, ``deploy``, ``rollback``,
``cicd_pipeline``), named ``noa-server-<hash of NOA_HOME>``, through a Prefect
:class:`~prefect.runner.Runner` living in a thread of its own. With ``serve=True``
(``noa server``) that runner also executes the runs (each in a child process, as
``flow.serve()`` does); without it the runs wait, Scheduled, for whoever serves the
deployment. A POST creates a deployment run (``run_deployment(..., timeout=0)``) and
returns its id; ``GET /v1/runs/{id}`` reads its state from the Prefect API.

Flows whose module is missing (written by other work in progress) are reported as
``skipped: <module> not available`` and their endpoints answer 503.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import importlib
import inspect
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from noa_core.errors import NoaError

#: kind -> (module, flow attribute)
FLOWS: dict[str, tuple[str, str]] = {
    "drop": ("flows.code_drop", "code_drop"),
    "merge": ("flows.sandbox_merge", "sandbox_merge"),
    "pipeline": ("flows.pipeline", "noa_pipeline"),
    "deploy": ("flows.deploy", "deploy"),
    "rollback": ("flows.deploy", "rollback"),
    "cicd": ("flows.cicd_pipeline", "cicd_pipeline"),
}


class OrchestratorError(NoaError):
    """A flow run could not be created or read."""


class Unavailable(OrchestratorError):
    """The flow (or Prefect itself) is not available: the API answers 503 ``skipped: ...``."""


@dataclass(frozen=True)
class RunRef:
    kind: str
    flow_run_id: str
    name: str
    state: str
    ui_url: str | None


@dataclass(frozen=True)
class RunState:
    flow_run_id: str
    name: str
    flow: str | None
    state: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, ...
    state_name: str
    message: str | None
    final: bool
    start_time: str | None
    end_time: str | None
    parameters: dict[str, Any] = field(default_factory=dict)
    ui_url: str | None = None
    result: Any = None  # the flow's result model once COMPLETED (read from Prefect's result storage)


class Orchestrator(Protocol):
    def availability(self) -> dict[str, str]: ...
    async def submit(self, kind: str, parameters: Mapping[str, Any], *, idempotency_key: str,
                     name: str | None = None) -> RunRef: ...
    async def status(self, flow_run_id: str) -> RunState | None: ...
    async def cancel(self, flow_run_id: str, message: str) -> None: ...


def prefect_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or, once Prefect is imported, its settings context."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    import sys

    if "prefect" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        value = PREFECT_API_URL.value()
        return str(value) if value else None
    return None


def deployment_name(home: str | os.PathLike[str]) -> str:
    return "noa-server-" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:8]


def _accepted(fn: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Only the parameters the flow's signature takes (flows of other helpers may differ)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return dict(parameters)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return {k: v for k, v in parameters.items() if v is not None or k in sig.parameters}
    return {k: v for k, v in parameters.items() if k in sig.parameters}


async def _result_of(state: Any) -> Any:
    """A completed run's result model (the NOA flows the server runs persist theirs), or None
    when it is not a result model or cannot be read (not persisted, storage gone)."""
    from noa_core.results import FlowResult

    try:
        value = await state.aresult(raise_on_failure=False, retry_result_failure=False)
    except Exception:  # noqa: BLE001 - a missing result is "no result", not an error of the status call
        return None
    return value if isinstance(value, FlowResult) else None


class PrefectOrchestrator:
    def __init__(self, home: Path, *, serve: bool = False, kinds: tuple[str, ...] | None = None,
                 start_timeout: float = 120.0, limit: int = 2) -> None:
        self.home = Path(home).resolve()
        self.serve = serve
        self.name = deployment_name(self.home)
        self.kinds = kinds or tuple(FLOWS)
        self.start_timeout = start_timeout
        self.limit = limit
        self.flows: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.deployments: dict[str, UUID] = {}
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._runner_loop: asyncio.AbstractEventLoop | None = None
        self._registered = threading.Event()
        self._error: BaseException | None = None
        self._client: Any = None

    # ---------------------------------------------------------------- lifecycle
    def _load_flows(self) -> None:
        for kind in self.kinds:
            module, attr = FLOWS[kind]
            try:
                flow = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                self.skipped[kind] = f"skipped: {module}.{attr} not available ({type(exc).__name__})"
                continue
            self.flows[kind] = flow

    def _thread_main(self) -> None:
        async def main() -> None:
            from prefect.deployments.runner import EntrypointType
            from prefect.runner import Runner

            try:
                self._runner_loop = asyncio.get_running_loop()
                runner = Runner(name=f"{self.name}-{os.getpid()}", query_seconds=1, limit=self.limit,
                                pause_on_shutdown=False)
                for kind, flow in self.flows.items():
                    self.deployments[kind] = await runner.aadd_flow(
                        flow, name=self.name, paused=False, tags=["noa-server"],
                        description=f"{flow.name} started through the NOA API for {self.home}",
                        entrypoint_type=EntrypointType.MODULE_PATH)
                self._runner = runner
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                self._error = exc
                self._registered.set()
                return
            self._registered.set()
            if self.serve:
                await runner.start()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            self._error = self._error or exc

    async def start(self) -> None:
        """Register the deployments (and serve them if asked); raises :class:`Unavailable` without Prefect."""
        if not prefect_api_url():
            raise Unavailable("skipped: no Prefect API configured (PREFECT_API_URL)")
        self._load_flows()
        ctx = contextvars.copy_context()  # the caller's Prefect settings context goes with the thread
        self._thread = threading.Thread(target=ctx.run, args=(self._thread_main,), name="noa-server-runner",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._registered.is_set():
            if time.monotonic() > deadline:
                raise Unavailable(f"skipped: deployments not registered within {self.start_timeout:.0f} s")
            await asyncio.sleep(0.05)
        if self._error is not None:
            raise Unavailable(f"skipped: cannot register deployments: {self._error!r}")
        from prefect.client.orchestration import get_client

        self._client = get_client()
        await self._client.__aenter__()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
        runner, loop = self._runner, self._runner_loop
        if runner is not None and loop is not None and self.serve and not loop.is_closed():
            try:
                fut = asyncio.run_coroutine_threadsafe(runner.astop(), loop)
                await asyncio.wait_for(asyncio.wrap_future(fut), timeout=30)
            except (TimeoutError, RuntimeError):
                pass
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)

    # ---------------------------------------------------------------- runs
    def availability(self) -> dict[str, str]:
        out = {k: "ok" for k in self.deployments}
        out.update(self.skipped)
        return out

    def _ui(self, run_id: str) -> str | None:
        api = prefect_api_url() or ""
        ui = os.environ.get("PREFECT_UI_URL") or (api.removesuffix("/api") if api else "")
        return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else None

    async def submit(self, kind: str, parameters: Mapping[str, Any], *, idempotency_key: str,
                     name: str | None = None) -> RunRef:
        if kind not in self.deployments:
            raise Unavailable(self.skipped.get(kind, f"skipped: {kind} flows are not served by this server"))
        from prefect.deployments.flow_runs import arun_deployment

        params = _accepted(self.flows[kind].fn, parameters)
        try:
            run = await arun_deployment(self.deployments[kind], parameters=params, timeout=0,
                                        idempotency_key=f"{self.name}:{idempotency_key}",
                                        flow_run_name=(name or None) and name[:200], tags=["noa-api", f"noa:{kind}"],
                                        as_subflow=False)
        except Exception as exc:
            raise Unavailable(f"skipped: Prefect refused the run: {' '.join(str(exc).split())[:300]}") from exc
        state = run.state.type.value if run.state else "SCHEDULED"
        return RunRef(kind, str(run.id), run.name, state, self._ui(str(run.id)))

    async def status(self, flow_run_id: str) -> RunState | None:
        from prefect.exceptions import ObjectNotFound

        try:
            run = await self._client.read_flow_run(UUID(flow_run_id))
        except (ObjectNotFound, ValueError):
            return None
        st = run.state
        result = await _result_of(st) if st is not None and st.is_completed() else None
        return RunState(flow_run_id=str(run.id), name=run.name, flow=str(run.flow_id),
                        state=st.type.value if st else "PENDING", state_name=st.name if st else "Pending",
                        message=st.message if st else None, final=bool(st and st.is_final()),
                        start_time=run.start_time.isoformat() if run.start_time else None,
                        end_time=run.end_time.isoformat() if run.end_time else None,
                        parameters={k: v for k, v in (run.parameters or {}).items() if k != "home"},
                        ui_url=self._ui(str(run.id)), result=result)

    async def cancel(self, flow_run_id: str, message: str) -> None:
        from prefect.states import Cancelled

        try:
            await self._client.set_flow_run_state(UUID(flow_run_id), Cancelled(message=message), force=True)
        except Exception:  # noqa: BLE001 - best effort compensation
            pass
