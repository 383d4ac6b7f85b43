"""The progress of ``noa pipeline`` / ``noa demo`` on stderr, read from the Prefect API.

Ten rows - code drop, merge, swarm, then the seven stages - each ``pending``, ``running``
(a spinner and its elapsed time) or its verdict when it ends. On a terminal this is a Rich
live view that gives way to the final table; anywhere else (CI, pipes, ``-v``) it is a
few plain lines, one per start and one per end, without escape codes.

Prefect's own console log lines (the flow and task runs' INFO lines) are held back while
the view runs: they still reach the Prefect UI (the API handler) and NOA_HOME/logs (the
flow logs handler); ``verbose`` keeps them on the terminal as well.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from noa_core.cli.run_watch import RunInfo, RunWatcher, new_watch_tag
from noa_core.stages.result import STAGES

__all__ = ["STEPS", "PipelineProgress", "PipelineView", "StepSpec", "pipeline_view", "quiet_prefect_console"]


@dataclass(frozen=True)
class StepSpec:
    key: str
    label: str
    flow_name: str


STEPS: tuple[StepSpec, ...] = (
    StepSpec("code_drop", "code drop", "code_drop"),
    StepSpec("sandbox_merge", "merge", "sandbox_merge"),
    StepSpec("swarm", "swarm", "swarm"),
    *(StepSpec(s, s, f"{s}_stage") for s in STAGES),
)
#: Prefect state types -> what a row says (a finished stage says its verdict instead)
STATE_WORDS = {"SCHEDULED": "pending", "PENDING": "pending", "RUNNING": "running", "PAUSED": "paused",
               "CANCELLING": "cancelling", "COMPLETED": "done", "FAILED": "failed", "CRASHED": "crashed",
               "CANCELLED": "cancelled"}
#: flows that hold the rows (never shown as a row's inner run)
FLOWS_ABOVE = frozenset({"noa_pipeline", "unified_workflow"})
GOOD = frozenset({"done", "passed", "ok", "merged", "nothing to merge",
                  "partially merged"})  # in a pipeline: its own drop merged (a held one says "held")
NEUTRAL = frozenset({"pending", "running", "paused", "cancelling", "skipped"})


def is_bad(state: str) -> bool:
    """Every other end is bad: failed, crashed, a merge's "validation failed" or "conflict", ..."""
    return state not in GOOD and state not in NEUTRAL


@dataclass
class StepStatus:
    spec: StepSpec
    state: str = "pending"
    seconds: float | None = None
    polled_at: float = 0.0
    run_name: str = ""
    detail: str = ""
    inner: str = ""  # while running: its newest running inner run (e.g. deploy-hello-service-staging)

    @property
    def ended(self) -> bool:
        return self.state not in ("pending", "running", "paused", "cancelling")

    def elapsed(self, now: float) -> float | None:
        if self.seconds is None:
            return None
        return self.seconds + (now - self.polled_at if self.state == "running" else 0.0)


class PipelineProgress:
    """The rows, updated from the watcher's snapshots (thread-safe)."""

    def __init__(self) -> None:
        self.steps = [StepStatus(s) for s in STEPS]
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def update(self, runs: list[RunInfo]) -> list[StepStatus]:
        """Apply one snapshot (oldest run first); returns the rows whose state changed."""
        by_flow: dict[str, RunInfo] = {}
        for r in runs:
            by_flow.setdefault(r.flow_name, r)  # the first run of each flow is the pipeline's own
        row_flows = {s.flow_name for s in STEPS}
        changed: list[StepStatus] = []
        with self._lock:
            for step in self.steps:
                run = by_flow.get(step.spec.flow_name)
                if run is None:
                    continue
                state = STATE_WORDS.get(run.state, run.state.lower())
                detail = step.detail
                if run.state == "COMPLETED" and run.verdict:
                    state, detail = run.verdict, run.details
                if state != step.state:
                    changed.append(step)
                step.state, step.detail = state, detail
                step.seconds, step.polled_at, step.run_name = run.seconds, run.polled_at, run.name
                step.inner = ""
                if run.running:
                    inner = [r.name for r in runs if r.running and r.created >= run.created and r.id != run.id
                             and r.flow_name not in FLOWS_ABOVE and r.flow_name not in row_flows]
                    step.inner = inner[-1] if inner else ""
        return changed

    def finish(self, doc: Mapping[str, Any]) -> list[StepStatus]:
        """Fill in what only the pipeline's result says: the steps' outcomes and the stages that
        never ran (skipped after a failed gate). Returns the rows whose state changed."""
        steps = doc.get("steps") or {}
        drop, merge, swarm = (steps.get(k) or {} for k in ("code_drop", "sandbox_merge", "swarm"))
        stages = {s["name"]: s for s in doc.get("stages") or []}
        changed: list[StepStatus] = []
        with self._lock:
            for step in self.steps:
                state, detail = step.state, step.detail
                if step.spec.key == "code_drop" and drop:
                    detail = (f"sandbox {drop.get('sandbox')}, confidence {float(drop.get('confidence') or 0):.2f}, "
                              f"tests {drop.get('tests')}")
                elif step.spec.key == "sandbox_merge" and merge:
                    state, detail = str(merge.get("outcome") or state), str(merge.get("message") or "")
                elif step.spec.key == "swarm":
                    if swarm:
                        state, detail = str(swarm.get("status") or state), str(swarm.get("counts") or "")
                    elif not step.ended:
                        state, detail = "skipped", "the merge did not land"
                elif step.spec.key in stages:
                    s = stages[step.spec.key]
                    state, detail = str(s["status"]), str(s.get("details", ""))
                if state != step.state:
                    changed.append(step)
                step.state, step.detail, step.inner = state, detail, ""
        return changed

    def snapshot(self) -> list[StepStatus]:
        with self._lock:
            return [StepStatus(s.spec, s.state, s.seconds, s.polled_at, s.run_name, s.detail, s.inner)
                    for s in self.steps]


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


class PlainLines:
    """One line per row start and per row end, e.g. ``pipeline: testing: passed in 3.2 s - 9 passed``.
    A row that ended is announced again only when the pipeline's result turns it bad (a merge
    whose validation failed)."""

    def __init__(self, console: Console, progress: PipelineProgress) -> None:
        self.console, self.progress = console, progress
        self._lock = threading.Lock()
        self._ended: set[str] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def show(self, changed: list[StepStatus]) -> None:
        now = time.monotonic()
        for step in changed:
            if step.state == "pending" or (step.spec.key in self._ended and not is_bad(step.state)):
                continue
            if step.ended:
                self._ended.add(step.spec.key)
            if step.state == "running":
                line = f"pipeline: {step.spec.label}: running ({step.run_name})"
            else:
                took = step.elapsed(now)
                line = (f"pipeline: {step.spec.label}: {step.state}" + (f" in {took:.1f} s" if took is not None else "")
                        + (f" - {' '.join(step.detail.split())[:160]}" if step.detail else ""))
            with self._lock:
                self.console.file.write(line + "\n")
                self.console.file.flush()


class LiveTable:
    """A Rich live view of the rows on a terminal; it gives way to the final table when done."""

    def __init__(self, console: Console, progress: PipelineProgress, title: str) -> None:
        self.console, self.progress, self.title = console, progress, title
        self._spinners: dict[str, Spinner] = {}
        self._live = Live(console=console, get_renderable=self.render, refresh_per_second=8, transient=True,
                          redirect_stdout=False, redirect_stderr=True)

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._live.stop()
        if exc_type is not None:  # the command failed: leave the last state on the screen
            self.console.print(self.render())

    def show(self, changed: list[StepStatus]) -> None:
        return None  # the live view re-renders itself

    def _icon(self, step: StepStatus) -> RenderableType:
        if step.state == "running":
            return self._spinners.setdefault(step.spec.key, Spinner("dots", style="cyan"))
        if step.state in GOOD:
            return Text("✔", style="green")
        if is_bad(step.state):
            return Text("✘", style="red")
        if step.state == "skipped":
            return Text("–", style="yellow")
        return Text("·", style="dim")

    def render(self) -> RenderableType:
        now = time.monotonic()
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = f"{self.title}  {now - self.progress.started:.0f} s"
        table.title_justify = "left"
        table.add_column("icon", width=1, no_wrap=True)
        table.add_column("step", width=11, no_wrap=True)
        table.add_column("state", min_width=7, max_width=18, no_wrap=True, overflow="ellipsis")
        table.add_column("elapsed", justify="right", width=7, no_wrap=True)
        table.add_column("detail", ratio=1, no_wrap=True, overflow="ellipsis")
        for step in self.progress.snapshot():
            style = "green" if step.state in GOOD else "red" if is_bad(step.state) else \
                "yellow" if step.state == "skipped" else "dim" if step.state == "pending" else ""
            detail = step.detail
            if step.state == "running":
                detail = step.inner or step.run_name
            table.add_row(self._icon(step), step.spec.label, Text(step.state, style=style),
                          _seconds(step.elapsed(now)), Text(" ".join(detail.split())[:200], style="dim"))
        return table


def _prefect_console_handlers() -> list[logging.Handler]:
    try:
        from prefect.logging.handlers import PrefectConsoleHandler
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return []
    loggers = [logging.getLogger(), *(lg for lg in list(logging.Logger.manager.loggerDict.values())
                                      if isinstance(lg, logging.Logger))]
    found: dict[int, logging.Handler] = {}
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, PrefectConsoleHandler):
                found[id(h)] = h
    return list(found.values())


@contextlib.contextmanager
def quiet_prefect_console(level: int = logging.WARNING, *, stream: Any = None) -> Iterator[int]:
    """Prefect's console handlers show only ``level`` and above inside (and write to ``stream``,
    e.g. a live view's stderr proxy, when given); the API and file handlers are untouched.
    Yields how many handlers it quietened."""
    handlers = _prefect_console_handlers()
    saved = [(h, h.level, getattr(h, "console", None), getattr(getattr(h, "console", None), "file", None))
             for h in handlers]
    for h in handlers:
        h.setLevel(max(h.level, level))
        if stream is not None and getattr(h, "console", None) is not None:
            h.console.file = stream  # type: ignore[attr-defined]
    try:
        yield len(handlers)
    finally:
        for h, lvl, console, file in saved:
            h.setLevel(lvl)
            if console is not None and file is not None:
                console.file = file


class PipelineView:
    """What :func:`pipeline_view` yields: the Prefect tag to run under, and :meth:`finish`."""

    def __init__(self, tag: str, progress: PipelineProgress, display: PlainLines | LiveTable,
                 watcher: RunWatcher) -> None:
        self.tag, self.progress, self.display, self.watcher = tag, progress, display, watcher

    def finish(self, doc: Mapping[str, Any]) -> None:
        """The pipeline returned: one last read of the runs, then what its result adds."""
        self.watcher.stop(final_poll=True)
        self.display.show(self.progress.finish(doc))


@contextlib.contextmanager
def pipeline_view(console: Console, *, title: str, verbose: bool = False,
                  interval_s: float = 0.5) -> Iterator[PipelineView]:
    """Show the pipeline's progress while the body runs the pipeline under ``view.tag``::

        with pipeline_view(console, title="pipeline x") as view, prefect.tags(view.tag):
            doc = run_pipeline(...)
        view.finish(doc)   # (after the tags context is fine too)
    """
    progress = PipelineProgress()
    live = console.is_terminal and not console.is_dumb_terminal and not verbose
    display: PlainLines | LiveTable = LiveTable(console, progress, title) if live else PlainLines(console, progress)
    tag = new_watch_tag()
    watcher = RunWatcher(tag, lambda runs: display.show(progress.update(runs)), interval_s=interval_s)
    with display:
        quiet = contextlib.nullcontext(0) if verbose else quiet_prefect_console(stream=sys.stderr if live else None)
        with quiet:
            watcher.start()
            try:
                yield PipelineView(tag, progress, display, watcher)
            finally:
                watcher.stop(final_poll=False)
