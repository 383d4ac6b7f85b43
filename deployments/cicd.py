"""The ``cicd_pipeline`` deployment: served by a Runner (``noa webhook serve``, ``python -m
deployments.cicd``) or deployed to the ``noa-process`` work pool (``prefect.yaml``).

* :func:`add_cicd_deployment` registers ``cicd_pipeline/<name>`` on a
  :class:`prefect.runner.Runner` (what ``flow.serve()`` does): default parameters
  (``home``, ``env``, optionally ``source``) and an optional cron / interval schedule.
  A schedule needs a default ``source`` (the repository to build on schedule).
* :class:`CicdRunner` keeps such a runner in a thread of the calling process (the
  webhook server), so GitHub deliveries become runs that this process also executes.
* ``python -m deployments.cicd --source REPO [--cron "0 3 * * *"]`` serves it on its own.

Runs can be started from the Prefect UI ("Run" on the deployment), by the schedule, by
``run_deployment("cicd_pipeline/<name>", parameters={"source": ..., "commit": sha})``
(the webhook), or in process by ``noa cicd run``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.deployments.runner import EntrypointType
from prefect.runner import Runner

from flows.cicd_pipeline import cicd_pipeline
from noa_core.errors import NoaError

FLOW_NAME = "cicd_pipeline"
CICD_TAG = "cicd"


def deployment_name(home: str | os.PathLike[str]) -> str:
    """``cicd-<8 hex>``: one deployment per NOA_HOME on a shared server."""
    return "cicd-" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:8]


async def add_cicd_deployment(runner: Runner, *, name: str, home: str | os.PathLike[str], env: str = "staging",
                              source: str | None = None, cron: str | None = None, interval_s: float | None = None,
                              monitor_s: float | None = None) -> UUID:
    """Register ``cicd_pipeline/<name>`` with the API through ``runner``; returns its id."""
    if (cron or interval_s) and not source:
        raise NoaError("a scheduled cicd_pipeline needs a default source (the repository to build)")
    parameters: dict[str, Any] = {"home": str(Path(home).resolve()), "env": env}
    if source:
        parameters["source"] = source
    if monitor_s is not None:
        parameters["monitor_s"] = monitor_s
    return await runner.aadd_flow(
        cicd_pipeline, name=name, cron=cron, interval=interval_s, parameters=parameters, paused=False,
        tags=["noa", CICD_TAG], description="trigger -> validate -> build -> test -> deploy -> monitor -> CL tree",
        entrypoint_type=EntrypointType.MODULE_PATH)


class CicdRunner:
    """A Runner in a thread: registers ``cicd_pipeline/<name>`` then (optionally) executes its runs."""

    def __init__(self, home: str | os.PathLike[str], *, name: str | None = None, env: str = "staging",
                 source: str | None = None, cron: str | None = None, execute: bool = True, limit: int = 2,
                 start_timeout: float = 120.0) -> None:
        self.home = Path(home).resolve()
        self.name = name or deployment_name(self.home)
        self.env, self.source, self.cron, self.execute, self.limit = env, source, cron, execute, limit
        self.start_timeout = start_timeout
        self.deployment_id: UUID | None = None
        self._runner: Runner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    @property
    def reference(self) -> str:
        """What ``run_deployment`` takes: ``cicd_pipeline/<name>``."""
        return f"{FLOW_NAME}/{self.name}"

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            runner = Runner(name=f"noa-cicd-{self.name[5:]}-{os.getpid()}", query_seconds=1, limit=self.limit,
                            pause_on_shutdown=False)
            self.deployment_id = await add_cicd_deployment(runner, name=self.name, home=self.home, env=self.env,
                                                           source=self.source, cron=self.cron)
            self._runner = runner
            self._ready.set()
            if self.execute:
                await runner.start()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()

    def start(self) -> CicdRunner:
        self._thread = threading.Thread(target=self._main, name="noa-cicd-runner", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise NoaError(f"the cicd_pipeline deployment was not registered within {self.start_timeout:.0f} s")
        if self._error is not None:
            raise NoaError(f"cannot register the cicd_pipeline deployment: {self._error!r}")
        if self.execute:
            deadline = time.monotonic() + self.start_timeout
            while not (self._runner is not None and self._runner.started):
                if self._error is not None or time.monotonic() > deadline:
                    raise NoaError(f"the cicd_pipeline runner did not start: {self._error!r}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        runner, loop = self._runner, self._loop
        if self.execute and runner is not None and loop is not None and runner.started and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=60)
            except Exception:  # noqa: BLE001, S110 - stopping anyway; the thread join below bounds it
                pass
        if self._thread is not None:
            self._thread.join(60)


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.cicd``: serve the deployment (with a schedule) until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m deployments.cicd", description=main.__doc__)
    parser.add_argument("--home", default=os.environ.get("NOA_HOME", ".noa"))
    parser.add_argument("--name", default=None, help="deployment name (default cicd-<hash of NOA_HOME>)")
    parser.add_argument("--env", default="staging", choices=("staging", "production"))
    parser.add_argument("--source", default=None, help="default source (needed by a schedule)")
    parser.add_argument("--cron", default=None, help='schedule, e.g. "0 3 * * *"')
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = Runner(name=f"noa-cicd-{os.getpid()}", query_seconds=2, limit=2)
        await add_cicd_deployment(runner, name=args.name or deployment_name(args.home), home=args.home,
                                  env=args.env, source=args.source, cron=args.cron)
        await runner.start()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
