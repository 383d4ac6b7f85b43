"""The switch controller: move a service's traffic from the app serving it to another one.

The seed's sequence, one method per step (``flows/app_switch.py`` runs each as a task)::

    request -> registry -> controller -> initialise -> ready -> route -> drain
            -> shutdown -> status -> report

* **request**     names given, not the same app;
* **registry**    both apps looked up; the source is the app serving the service;
* **controller**  one switch per service at a time (a lock file); the route exists in
  NOA's Caddy and points at the source (the routing before is kept for the undo);
* **initialise**  an owned target app is started on the local deploy target (a release
  snapshot of its project directory); an external one is never started by NOA;
* **ready**       its health path answers 2xx within ``health_timeout_s``;
* **route**       Caddy sends new requests to it (the source stays at weight 0), checked
  with one request through the public route;
* **drain**       the source's in-flight requests finish (Caddy's per-upstream count);
* **shutdown**    the source leaves the route; an owned source is stopped, an external
  one is *detached*: it keeps running, NOA never kills what it does not own;
* **status**      registry: target ``serving``, source ``stopped`` / ``detached``;
* **report**      the result dict, and a CL tree entry (kind ``registry``).

A step that fails raises :class:`SwitchFailed`; :meth:`SwitchController.undo` then puts
traffic back on the source (weights first, the target drained, then removed), stops
what this switch started and marks the target ``failed`` with the reason.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from noa_core.apps.health import probe, wait_ready
from noa_core.apps.registry import AppRecord, AppRegistry
from noa_core.deploy.interface import DeployTarget, Instance, TrafficRouter, Upstream
from noa_core.errors import BadInput, NoaError

if TYPE_CHECKING:
    from noa_core.config import NoaSettings

__all__ = ["STEPS", "SwitchController", "SwitchFailed", "SwitchOptions", "SwitchRun", "route_of"]

STEPS = ("request", "registry", "controller", "initialise", "ready", "route", "drain", "shutdown", "status")

Log = Callable[[str], None]


class SwitchFailed(NoaError):
    """A step of a switch failed; traffic goes back to the source."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


def route_of(service: str) -> str:
    """The Caddy route of a service (distinct from the deploy routes ``<app>-<env>``)."""
    return f"apps-{service}"


@dataclass(frozen=True)
class SwitchOptions:
    health_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0


@dataclass
class SwitchRun:
    """The live state of one switch, handed from step to step (never persisted as is)."""

    to_name: str
    from_name: str | None = None
    service: str = ""
    route: str = ""
    public: str = ""
    src: AppRecord | None = None
    dst: AppRecord | None = None
    src_upstream: str = ""
    dst_upstream: str = ""
    before: tuple[Upstream, ...] = ()
    instance: Instance | None = None  # the owned target started by this switch
    routed: bool = False
    src_removed: bool = False
    src_stopped: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    failure: SwitchFailed | None = None
    lock: IO[str] | None = None
    started: float = field(default_factory=time.time)


class SwitchController:
    def __init__(self, settings: NoaSettings, *, target: DeployTarget | None = None,
                 router: TrafficRouter | None = None, options: SwitchOptions = SwitchOptions(),
                 log: Log | None = None) -> None:
        self.settings = settings
        self.home = Path(settings.home).resolve()
        self._target, self._router = target, router
        self.options = options
        self.log: Log = log or (lambda _m: None)

    @property
    def target(self) -> DeployTarget:
        if self._target is None:
            from noa_core.deploy.local_target import LocalTarget

            self._target = LocalTarget(self.home)
        return self._target

    @property
    def router(self) -> TrafficRouter:
        if self._router is None:
            from noa_core.deploy.caddy_router import CaddyRouter

            self._router = CaddyRouter(self.home)
        return self._router

    # ------------------------------------------------------------------ driver
    def begin(self, to: str, from_app: str | None = None) -> SwitchRun:
        return SwitchRun(to_name=to, from_name=from_app)

    def step(self, run: SwitchRun, name: str) -> dict[str, Any]:
        """Run one step; records it; raises :class:`SwitchFailed` (or BadInput before anything changed)."""
        if name not in STEPS:
            raise NoaError(f"unknown switch step {name!r}")
        t0 = time.monotonic()
        try:
            detail = getattr(self, f"_{name}")(run) or ""
        except BadInput as exc:
            if name in ("request", "registry"):  # refused before anything was touched: exit 2
                run.steps.append(_step(name, t0, "failed", exc.one_line()))
                raise
            run.steps.append(_step(name, t0, "failed", exc.one_line()))
            run.failure = SwitchFailed(name, exc.one_line())
            raise run.failure from exc
        except SwitchFailed as exc:
            run.steps.append(_step(name, t0, "failed", exc.reason))
            run.failure = exc
            raise
        except Exception as exc:
            why = exc.one_line() if isinstance(exc, NoaError) else f"{type(exc).__name__}: {exc}"
            run.steps.append(_step(name, t0, "failed", why))
            run.failure = SwitchFailed(name, why)
            raise run.failure from exc
        run.steps.append(_step(name, t0, "passed", detail))
        self.log(f"{name}: {detail}" if detail else name)
        return run.steps[-1]

    def run(self, to: str, from_app: str | None = None) -> dict[str, Any]:
        """The whole sequence in this process (the flow does the same, one task per step)."""
        run = self.begin(to, from_app)
        try:
            for name in STEPS:
                self.step(run, name)
        except SwitchFailed:
            self.undo(run)
        finally:
            self.release(run)
        return self.report(run)

    # ------------------------------------------------------------------ steps
    def _request(self, run: SwitchRun) -> str:
        if not run.to_name:
            raise BadInput("name the app to switch to")
        if run.from_name is not None and run.from_name == run.to_name:
            raise BadInput(f"cannot switch {run.to_name!r} to itself")
        return f"switch to {run.to_name}" + (f" from {run.from_name}" if run.from_name else "")

    def _registry(self, run: SwitchRun) -> str:
        with AppRegistry(self.settings) as reg:
            dst = reg.get(run.to_name)
            src = reg.get(run.from_name) if run.from_name else reg.serving(dst.service)
        if src is None:
            raise BadInput(f"no app serves {dst.service!r} yet: register one with --serve first")
        if src.service != dst.service:
            raise BadInput(f"{src.name!r} serves {src.service!r}, {dst.name!r} belongs to {dst.service!r}")
        if src.status != "serving":
            raise BadInput(f"{src.name!r} is not serving (status {src.status})")
        if dst.name == src.name or dst.status == "serving":
            raise BadInput(f"{dst.name!r} already serves {dst.service!r}")
        run.src, run.dst, run.service, run.route = src, dst, dst.service, route_of(dst.service)
        return f"{src.name} ({src.kind}) -> {dst.name} ({dst.kind}) for service {dst.service}"

    def _controller(self, run: SwitchRun) -> str:
        assert run.src is not None and run.dst is not None
        lock_path = self.home / "apps" / f"{run.service}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "w")  # noqa: SIM115 - held open across steps: the flock lives with it
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise SwitchFailed("controller", f"another switch of {run.service!r} is running") from None
        run.lock = fh
        run.public = self.router.ensure_route(run.route)
        src_up = run.src.upstream
        if not src_up:
            raise SwitchFailed("controller", f"{run.src.name} has no running instance to route from")
        run.src_upstream = src_up
        run.before = (Upstream(src_up, 1, run.src.name),)
        current = self.router.upstreams(run.route)
        note = ""
        if not any(u.endpoint == src_up and u.weight > 0 for u in current):
            self.router.set_upstreams(run.route, run.before)  # the route was lost (new Caddy state)
            note = "; route restored to the source first"
        plan = ("start it on the local target" if run.dst.owned else "external: NOA does not start it")
        then = ("stop it" if run.src.owned else "detach it (NOA does not own it)")
        return f"route {run.route} on {run.public}; {run.dst.name}: {plan}; {run.src.name}: {then}{note}"

    def _initialise(self, run: SwitchRun) -> str:
        dst = run.dst
        assert dst is not None
        if not dst.owned:
            run.dst_upstream = dst.upstream or ""
            return f"external at {dst.endpoint}: nothing to start"
        from noa_core.deploy.releases import make_release
        from noa_core.manifest import MANIFEST_FILENAME, load_manifest

        project = Path(dst.project_dir or "")
        if not (project / MANIFEST_FILENAME).is_file():
            raise SwitchFailed("initialise", f"{project}: no {MANIFEST_FILENAME}")
        release = make_release(project, load_manifest(project / MANIFEST_FILENAME), self.home, app=dst.name)
        release = replace(release, health_path=dst.health_path)
        avail = self.target.availability()
        if not avail.ok:
            raise SwitchFailed("initialise", avail.reason)
        run.instance = self.target.start(release)
        run.dst_upstream = run.instance.endpoint
        return f"started {run.instance.instance_id} on {run.instance.endpoint}"

    def _ready(self, run: SwitchRun) -> str:
        dst = run.dst
        assert dst is not None
        t = self.options.health_timeout_s
        if run.instance is not None:
            h = self.target.wait_healthy(run.instance, timeout_s=t)
        else:
            h = wait_ready(run.dst_upstream, dst.health_path, timeout_s=t)
        if not h.ok:
            raise SwitchFailed("ready", f"{dst.name} never became ready ({dst.health_path}): {h.reason}")
        return f"{dst.health_path} answered {h.status_code} after {h.seconds:.2f}s"

    def _route(self, run: SwitchRun) -> str:
        assert run.src is not None and run.dst is not None
        self.router.set_upstreams(run.route, [Upstream(run.src_upstream, 0, run.src.name),
                                              Upstream(run.dst_upstream, 1, run.dst.name)])
        run.routed = True
        h = probe(run.public, run.dst.health_path, timeout_s=5.0)
        if not h.ok:
            raise SwitchFailed("route", f"through Caddy {run.public}{run.dst.health_path}: {h.reason}")
        return f"new requests on {run.public} go to {run.dst_upstream} ({run.src_upstream} at weight 0)"

    def _drain(self, run: SwitchRun) -> str:
        t = self.options.drain_timeout_s
        if self.router.drain(run.route, run.src_upstream, timeout_s=t):
            return f"no request in flight on {run.src_upstream}"
        left = self.router.in_flight(run.route, run.src_upstream)
        return f"{left} request(s) still in flight on {run.src_upstream} after {t:g}s"

    def _shutdown(self, run: SwitchRun) -> str:
        src, dst = run.src, run.dst
        assert src is not None and dst is not None
        self.router.set_upstreams(run.route, [Upstream(run.dst_upstream, 1, dst.name)])
        run.src_removed = True
        if not src.owned:
            return f"detached {src.name}: {src.endpoint} keeps running (NOA does not own it)"
        assert src.instance is not None
        inst = Instance.from_dict(src.instance)
        self.target.stop(inst, drain_timeout_s=self.options.drain_timeout_s)
        run.src_stopped = True
        return f"stopped {inst.instance_id}"

    def _status(self, run: SwitchRun) -> str:
        src, dst = run.src, run.dst
        assert src is not None and dst is not None
        with AppRegistry(self.settings) as reg:
            after = "stopped" if src.owned else "detached"
            reg.set_status(src.name, after, f"switched to {dst.name}", instance=None)
            reg.set_status(dst.name, "serving", f"replaced {src.name}",
                           instance=run.instance.as_dict() if run.instance else None)
        return f"{dst.name} serving, {src.name} {after}"

    # ------------------------------------------------------------------ undo / report
    def undo(self, run: SwitchRun) -> dict[str, Any]:
        """Traffic back where it was; stop what this switch started; say why."""
        t0 = time.monotonic()
        failure = run.failure
        notes: list[str] = []
        verdict = "passed"
        try:
            if run.src_stopped:
                verdict = "failed"
                notes.append(f"{run.src.name if run.src else 'source'} was already stopped: traffic stays on "
                             f"{run.dst.name if run.dst else 'target'}")
            elif run.routed or run.src_removed:
                self.router.set_upstreams(run.route, [*run.before] + (
                    [Upstream(run.dst_upstream, 0, run.dst.name if run.dst else "")] if run.dst_upstream else []))
                if run.dst_upstream:
                    self.router.drain(run.route, run.dst_upstream, timeout_s=self.options.drain_timeout_s)
                self.router.set_upstreams(run.route, run.before)
                notes.append(f"traffic back on {run.src_upstream}")
            if run.instance is not None and not run.src_stopped:
                self.target.stop(run.instance, drain_timeout_s=2.0)
                notes.append(f"stopped {run.instance.instance_id}")
            if run.dst is not None and run.src is not None and failure is not None and not run.src_stopped \
                    and run.lock is not None:  # a switch refused for want of the lock says nothing of the app
                with AppRegistry(self.settings) as reg:
                    reg.set_status(run.dst.name, "failed", str(failure), instance=None)
                    reg.set_status(run.src.name, "serving", run.src.reason, instance=run.src.instance)
        except Exception as exc:  # noqa: BLE001 - report the undo's own failure, never hide the first
            verdict = "failed"
            notes.append(f"undo failed: {type(exc).__name__}: {exc}")
        step = _step("undo", t0, verdict, "; ".join(notes) or "nothing had changed")
        run.steps.append(step)
        self.log(f"undo: {step['reason']}")
        return step

    def release(self, run: SwitchRun) -> None:
        if run.lock is not None:
            run.lock.close()  # closing drops the flock
            run.lock = None

    def report(self, run: SwitchRun) -> dict[str, Any]:
        t0 = time.monotonic()
        src = run.src.name if run.src else run.from_name
        ok = run.failure is None and bool(run.steps) and run.steps[-1]["name"] == "status"
        if ok:
            reason = f"{run.to_name} serves {run.service} instead of {src}"
        elif run.failure is not None:
            stays = src if not run.src_stopped else run.to_name
            reason = f"{run.failure}; " + (f"traffic stays on {stays}" if stays else "nothing was changed")
        else:
            reason = "switch did not finish"
        res: dict[str, Any] = {
            "service": run.service, "from": src, "to": run.to_name, "outcome": "switched" if ok else "failed",
            "reason": reason, "endpoint": run.public, "route": run.route,
            "serving": run.to_name if ok or run.src_stopped else src,
            "steps": [dict(s) for s in run.steps], "duration_s": round(time.time() - run.started, 3),
        }
        payload = {k: res[k] for k in ("service", "from", "to", "outcome", "reason", "serving")}
        payload["steps"] = [{k: s[k] for k in ("name", "verdict", "duration_s")} for s in run.steps]
        res["cltree"] = record(self.settings, f"apps/{run.service or run.to_name}", {"action": "switch", **payload})
        res["steps"].append(_step("report", t0, "passed", f"CL tree: {res['cltree']}"))
        return res

    # ------------------------------------------------------------------ first routing
    def serve(self, name: str) -> dict[str, Any]:
        """Make ``name`` serve its service when nothing does yet (start it if owned)."""
        t0 = time.time()
        with AppRegistry(self.settings) as reg:
            app = reg.get(name)
            current = reg.serving(app.service)
        if current is not None:
            if current.name == name:
                raise BadInput(f"{name!r} already serves {app.service!r}")
            raise BadInput(f"{current.name!r} serves {app.service!r}: use noa apps switch {name}")
        route = route_of(app.service)
        public = self.router.ensure_route(route)
        inst: Instance | None = None
        run = SwitchRun(to_name=name, dst=app, service=app.service, route=route, public=public)
        try:
            self._initialise(run)
            self._ready(run)
        except SwitchFailed as exc:
            if run.instance is not None:
                self.target.stop(run.instance, drain_timeout_s=2.0)
            with AppRegistry(self.settings) as reg:
                reg.set_status(name, "failed", str(exc), instance=None)
            res = {"service": app.service, "to": name, "outcome": "failed", "reason": str(exc), "endpoint": public}
            res["cltree"] = record(self.settings, f"apps/{app.service}", {"action": "serve", **res})
            return res
        inst = run.instance
        self.router.set_upstreams(route, [Upstream(run.dst_upstream, 1, name)])
        with AppRegistry(self.settings) as reg:
            reg.set_status(name, "serving", "first app of its service", instance=inst.as_dict() if inst else None)
        res = {"service": app.service, "to": name, "outcome": "serving", "reason": "first app of its service",
               "endpoint": public, "upstream": run.dst_upstream, "duration_s": round(time.time() - t0, 3)}
        res["cltree"] = record(self.settings, f"apps/{app.service}", {"action": "serve", **{
            k: res[k] for k in ("service", "to", "outcome", "reason")}})
        return res


def _step(name: str, t0: float, verdict: str, reason: str = "") -> dict[str, Any]:
    return {"name": name, "verdict": verdict, "duration_s": round(time.monotonic() - t0, 3), "reason": reason}


def record(settings: NoaSettings, subject: str, payload: dict[str, Any]) -> str:
    """A CL tree entry (kind ``registry``); its id, or ``skipped: ...`` when the CL tree is missing."""
    try:
        from noa_core.cltree import record_change
    except ImportError:
        return "skipped: CL tree not available"
    try:
        return record_change(settings, "registry", subject, payload).id
    except Exception as exc:  # noqa: BLE001 - the switch happened; the log entry is secondary
        return f"skipped: CL tree: {type(exc).__name__}: {exc}"
