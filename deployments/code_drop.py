"""The ``code_drop`` deployment of a drop-in folder, served inside ``noa watch``.

How a drop-in item becomes a flow run in the Prefect UI:

* :func:`drop_in_flow` is ``code_drop`` with three hooks and no run-name template (the
  watcher names each run after its item);
* :class:`PrefectDeploymentBackend` starts a :class:`prefect.runner.Runner` in a thread
  of the watcher process and adds that flow to it as the deployment
  ``code_drop/drop-in-<hash of NOA_HOME>`` (one per NOA_HOME, so watchers of different
  homes on one server never run each other's items).  ``Runner.aadd_flow`` is what
  ``flow.serve()`` does: the deployment is registered with the API and the runner polls
  it every second, starting each scheduled run in a child process;
* each item is triggered with ``run_deployment(deployment_id, parameters={source, sandbox,
  home, use_ai}, flow_run_name=<item>, idempotency_key="drop-in:<key>:<attempt>",
  timeout=0)`` and its final state is polled from the API (calls are retried while the
  API is away).  The idempotency key (scoped to the deployment) makes a retried trigger
  (a watcher that died between creating the run and journalling it) return the same run
  instead of a second one.

The hooks run in the flow run's process:

* ``on_running``: :func:`die_with_watcher` asks the kernel to SIGKILL the run when the
  watcher dies (``PR_SET_PDEATHSIG``), so a killed watcher never leaves a run going on
  behind the restarted one's back (which would process the item twice);
* ``on_completion`` / ``on_failure``: :func:`write_receipt` writes
  ``drop-in/.runs/<flow-run-id>.json`` with the report, or with the exception's class
  and whether it is a refusal (``HostileInput``/``LimitExceeded``: quarantine) - facts
  the state message carries only as text.

Items can also be run from the UI: "Run" on the deployment with another ``source``.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.flow_runs import arun_deployment
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.runner import Runner
from prefect.states import Crashed

from flows.code_drop import code_drop
from noa_core.dropin.folder import DropInFolder
from noa_core.dropin.runs import RunOutcome, RunRequest, RunStatus, RunTicket
from noa_core.errors import BadInput, HostileInput, LimitExceeded, NoaError
from noa_core.results import FlowResult

DROP_IN_TAG = "drop-in"
WATCHER_PID_ENV = "NOA_DROPIN_WATCHER_PID"
_PR_SET_PDEATHSIG = 1
_REFUSALS_QUARANTINED = ("HostileInput", "LimitExceeded")
_REFUSALS = _REFUSALS_QUARANTINED + ("BadInput", "ManifestError", "UnknownDrop")
T = TypeVar("T")


def deployment_name(home: str | os.PathLike[str]) -> str:
    """``drop-in-<8 hex>``: one deployment per NOA_HOME on a shared server."""
    digest = hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:8]
    return f"drop-in-{digest}"


# ------------------------------------------------------------------ hooks (in the flow run's process)
def die_with_watcher(flow: Any, flow_run: FlowRun, state: Any) -> None:
    """on_running: tie this flow run's process to the watcher that started it (Linux)."""
    expected = os.environ.get(WATCHER_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    if str(os.getppid()) != expected:  # the watcher died before the hook ran
        os.kill(os.getpid(), signal.SIGKILL)


def _error_facts(exc: BaseException) -> dict[str, Any]:
    message = exc.one_line() if isinstance(exc, NoaError) else " ".join(str(exc).split())
    return {"type": type(exc).__name__, "hostile": isinstance(exc, (HostileInput, LimitExceeded)),
            "bad_input": isinstance(exc, BadInput), "message": message[:4000]}


def write_receipt(flow: Any, flow_run: FlowRun, state: Any) -> None:
    """on_completion / on_failure: what the watcher needs to file the item."""
    if DROP_IN_TAG not in (flow_run.tags or []):
        return
    home = (flow_run.parameters or {}).get("home")
    if not home:
        return
    data: dict[str, Any] = {"flow_run_id": str(flow_run.id), "state": state.type.value, "message": state.message}
    try:
        value = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be read is reported, not raised
        value = exc
    if state.is_completed() and isinstance(value, FlowResult):
        data["report"] = value.to_json()
    elif state.is_completed() and isinstance(value, dict):
        data["report"] = value
    elif isinstance(value, BaseException):
        data["error"] = _error_facts(value)
    DropInFolder.for_home(home).write_receipt(str(flow_run.id), data)


def drop_in_flow() -> Flow[..., dict[str, Any]]:
    """``code_drop`` as the drop-in deployment runs it."""
    flow = code_drop.with_options(on_running=[die_with_watcher], on_completion=[write_receipt],
                                  on_failure=[write_receipt])
    flow.flow_run_name = None  # keep the run name the watcher gives (the item's name)
    return flow


# ------------------------------------------------------------------ the backend
class PrefectDeploymentBackend:
    """Serve ``code_drop`` as this home's drop-in deployment and run items through it."""

    def __init__(self, home: str | os.PathLike[str], *, concurrency: int = 2, use_ai: bool = True,
                 sandbox: str = "AUTO", poll_interval: float = 1.0, receipt_timeout: float = 30.0,
                 start_timeout: float = 180.0, child_console_level: str | None = "CRITICAL",
                 api_patience: float = 600.0) -> None:
        self.home = Path(home).resolve()
        self.folder = DropInFolder.for_home(self.home)
        self.name = deployment_name(self.home)
        self.concurrency = concurrency
        self.use_ai = use_ai
        self.sandbox = sandbox
        self.poll_interval = poll_interval
        self.receipt_timeout = receipt_timeout
        self.start_timeout = start_timeout
        self.child_console_level = child_console_level
        self.api_patience = api_patience
        self.deployment_id: UUID | None = None
        self._runner: Runner | None = None
        self._runner_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._registered = threading.Event()
        self._go = threading.Event()
        self._abort = False
        self._client: Any = None
        self.description = f"deployment code_drop/{self.name}"

    # ---------------------------------------------------------------- serving
    def _serve(self) -> None:
        """The runner thread: register the deployment, then serve once told to."""

        async def main() -> None:
            try:
                self._runner_loop = asyncio.get_running_loop()
                runner = Runner(name=f"noa-watch-{self.name[8:]}-{os.getpid()}", query_seconds=1,
                                limit=self.concurrency, pause_on_shutdown=False)
                self.deployment_id = await runner.aadd_flow(
                    drop_in_flow(), name=self.name, paused=False, tags=[DROP_IN_TAG],
                    parameters={"home": str(self.home), "use_ai": self.use_ai, "sandbox": self.sandbox},
                    description=f"code_drop for the drop-in folder {self.folder.root} (served by `noa watch`)",
                    entrypoint_type=EntrypointType.MODULE_PATH)
                self._runner = runner
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                self._error = exc
                return
            self._registered.set()
            await asyncio.to_thread(self._go.wait)
            if not self._abort:
                await runner.start()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            self._error = self._error or exc

    async def _wait_for(self, done: Any, what: str) -> None:
        assert self._thread is not None
        deadline = time.monotonic() + self.start_timeout
        while not done():
            if self._error is not None or not self._thread.is_alive():
                raise NoaError(f"cannot {what} the drop-in deployment: {self._error!r}")
            if time.monotonic() > deadline:
                raise NoaError(f"could not {what} the drop-in deployment within {self.start_timeout:.0f} s")
            await asyncio.sleep(0.05)

    async def start(self) -> None:
        """Register ``code_drop/drop-in-<hash>`` (nothing runs until :meth:`serve`)."""
        os.environ[WATCHER_PID_ENV] = str(os.getpid())  # inherited by the flow run processes
        if self.child_console_level:
            # this process configured its logging when it imported prefect; the flow run
            # processes started from now on log to the API (the UI) and not over our progress lines
            os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = self.child_console_level
        self._thread = threading.Thread(target=self._serve, name="noa-drop-in-runner", daemon=True)
        self._thread.start()
        await self._wait_for(self._registered.is_set, "register")
        self._client = get_client()
        await self._client.__aenter__()
        self.description = f"deployment code_drop/{self.name} ({self._ui_base() or 'Prefect UI'})"

    async def serve(self) -> None:
        """Start the runner: it polls the deployment every second and runs what is scheduled."""
        self._go.set()
        await self._wait_for(lambda: self._runner is not None and self._runner.started, "serve")

    def _tracked(self, run_id: str) -> bool:
        """True while the runner still holds the run's process (it exits a moment after its final state)."""
        manager = getattr(self._runner, "_process_manager", None)
        try:
            return manager is not None and manager.get(UUID(run_id)) is not None
        except Exception:  # noqa: BLE001 - a private API: never let it break the watcher
            return False

    async def _drain_finished(self, timeout: float = 30.0) -> None:
        """Let finished runs' processes exit before the runner stops.

        ``Runner.astop`` cancels every process it still holds, and a run whose process is
        still exiting after Completed would be flipped to Cancelled.
        """
        manager = getattr(self._runner, "_process_manager", None)
        if manager is None or self._client is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ids = list(manager.flow_run_ids())
            except Exception:  # noqa: BLE001
                return
            finished = []
            for run_id in ids:
                try:  # no patience here: a watcher that stops must not hang on an absent API
                    flow_run = await self._client.read_flow_run(run_id)
                except ObjectNotFound:
                    flow_run = None
                except Exception:  # noqa: BLE001
                    return
                if flow_run is None or (flow_run.state is not None and flow_run.state.is_final()):
                    finished.append(run_id)
            if not finished:
                return
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._runner is not None and self._go.is_set():
            await self._drain_finished()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
        self._abort = not self._go.is_set()
        self._go.set()
        runner, loop = self._runner, self._runner_loop
        if runner is not None and loop is not None and runner.started and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(runner.astop(), loop)
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), timeout=60)
            except (TimeoutError, RuntimeError):
                pass
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60)

    # ---------------------------------------------------------------- runs
    async def _patiently(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Retry ``call`` while the API is unreachable or answers 5xx, for up to ``api_patience`` s.

        Safe for every call made here: reads, a forced Crashed state, and run creation,
        which carries an idempotency key.
        """
        deadline = time.monotonic() + self.api_patience
        delay = 1.0
        while True:
            try:
                return await call()
            except (httpx.TransportError, PrefectHTTPStatusError) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
                if isinstance(exc, PrefectHTTPStatusError) and status < 500:
                    raise
                if time.monotonic() + delay > deadline:
                    raise NoaError(f"the Prefect API did not answer while trying to {what}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def submit(self, request: RunRequest) -> RunTicket:
        assert self.deployment_id is not None
        deployment_id = self.deployment_id
        flow_run = await self._patiently(lambda: arun_deployment(
            deployment_id,
            parameters={"source": request.source, "sandbox": request.sandbox, "home": request.home,
                        "use_ai": request.use_ai},
            flow_run_name=request.name[:200], timeout=0,
            # idempotency keys are per flow on the server: scope them to this home's deployment
            idempotency_key=f"{self.name}:{request.idempotency_key}",
            tags=[DROP_IN_TAG, f"drop-in-kind:{request.kind}"], as_subflow=False), f"start a run for {request.name}")
        run_id = str(flow_run.id)
        return RunTicket(run_id, self.url(run_id))

    async def _read(self, run_id: str) -> FlowRun | None:
        async def read() -> FlowRun | None:
            try:
                return await self._client.read_flow_run(UUID(run_id))
            except ObjectNotFound:
                return None

        return await self._patiently(read, f"read flow run {run_id}")

    async def status(self, run_id: str) -> RunStatus:
        flow_run = await self._read(run_id)
        if flow_run is None:
            return RunStatus.MISSING
        state = flow_run.state
        if state is None:
            return RunStatus.ACTIVE
        if state.is_final():
            return RunStatus.FINAL
        if state.is_scheduled():
            return RunStatus.SCHEDULED
        return RunStatus.ACTIVE

    async def wait(self, run_id: str) -> RunOutcome:
        while True:
            flow_run = await self._read(run_id)
            if flow_run is None:
                return RunOutcome("crashed", message="the flow run no longer exists on the Prefect server")
            if flow_run.state is not None and flow_run.state.is_final():
                outcome = await self._outcome(flow_run)
                deadline = time.monotonic() + 30
                while self._tracked(run_id) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # its process is exiting; the item is done when it is gone
                return outcome
            await asyncio.sleep(self.poll_interval)

    async def _outcome(self, flow_run: FlowRun) -> RunOutcome:
        state = flow_run.state
        assert state is not None
        kind = {StateType.COMPLETED: "completed", StateType.FAILED: "failed", StateType.CRASHED: "crashed",
                StateType.CANCELLED: "cancelled"}.get(state.type, "crashed")
        run_id = str(flow_run.id)
        receipt = self.folder.read_receipt(run_id)
        if receipt is None and kind in ("completed", "failed"):
            # the hook writes it just after the final state is set
            deadline = time.monotonic() + self.receipt_timeout
            while receipt is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                receipt = self.folder.read_receipt(run_id)
        message = state.message or ""
        if receipt is not None:
            err = receipt.get("error") or {}
            report = receipt.get("report") if kind == "completed" else None
            return RunOutcome(kind, report=report if isinstance(report, dict) else None,  # type: ignore[arg-type]
                              error_type=err.get("type"), hostile=bool(err.get("hostile")),
                              bad_input=bool(err.get("bad_input")), message=err.get("message") or message)
        # no receipt (the run's process died right after its final state): read the state itself
        m = re.search(r"exception: (\w+): (.*)$", message, re.DOTALL)
        error_type = m.group(1) if m else None
        report = self._find_report(flow_run) if kind == "completed" else None
        return RunOutcome(kind, report=report, error_type=error_type,  # type: ignore[arg-type]
                          hostile=error_type in _REFUSALS_QUARANTINED, bad_input=error_type in _REFUSALS,
                          message=m.group(2) if m else message)

    def _find_report(self, flow_run: FlowRun) -> dict[str, Any] | None:
        """The newest report under NOA_HOME/reports for this run's source, written after it started."""
        source = (flow_run.parameters or {}).get("source")
        start = flow_run.start_time.timestamp() if flow_run.start_time else 0.0
        best: tuple[float, dict[str, Any]] | None = None
        reports = self.home / "reports"
        for path in reports.glob("*.json") if reports.is_dir() else []:
            try:
                mtime = path.stat().st_mtime
                if mtime + 1 < start:
                    continue
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("source") == source and (best is None or mtime > best[0]):
                best = (mtime, data)
        return best[1] if best else None

    async def mark_crashed(self, run_id: str, message: str) -> None:
        async def mark() -> None:
            try:
                await self._client.set_flow_run_state(UUID(run_id), Crashed(message=message), force=True)
            except ObjectNotFound:
                pass

        await self._patiently(mark, f"mark flow run {run_id} crashed")

    def _ui_base(self) -> str | None:
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

        ui = PREFECT_UI_URL.value()
        if ui:
            return str(ui).rstrip("/")
        api = PREFECT_API_URL.value()
        return str(api).rstrip("/").removesuffix("/api") if api else None

    def url(self, run_id: str) -> str | None:
        base = self._ui_base()
        return f"{base}/runs/flow-run/{run_id}" if base else None


__all__ = ["DROP_IN_TAG", "PrefectDeploymentBackend", "deployment_name", "die_with_watcher", "drop_in_flow",
           "write_receipt"]
