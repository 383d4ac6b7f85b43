"""Blue-green, canary and rollback, driving a :class:`DeployTarget` and a
:class:`TrafficRouter` (Prefect-free; the flows in ``flows/deploy.py`` wrap it).

* **blue-green**: start green beside blue, health-check it, switch all traffic in one
  routing change (blue kept at weight 0 so its in-flight requests can be counted),
  wait until blue has nothing in flight, optionally watch green for ``monitor_s``
  (a failure switches back to blue), then stop blue. A failed health check stops green
  and leaves blue serving.
* **canary**: start the canary, health-check it, then for each weight step set the
  weights, hold ``interval_s`` while :class:`~noa_core.deploy.analysis.StepAnalysis`
  measures every ``tick_s``; a failure puts the canary's weight to 0 at once, stops it
  and marks the release rolled back. After the 100 % step, stable is drained and stopped.
* **rollback**: the previous good release, deployed blue-green.

Every result is a plain dict (see :func:`result`), the shape ``noa deploy --json`` prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noa_core.deploy.analysis import AnalysisConfig, StepAnalysis, parse_prometheus_errors
from noa_core.deploy.interface import DeployError, DeployTarget, Instance, Release, TrafficRouter, Upstream
from noa_core.deploy.releases import ReleaseStore, record_in_cltree

__all__ = ["DeployController", "DeployOptions", "result", "route_name"]

Log = Callable[[str], None]
Approve = Callable[[int], bool]


def route_name(app: str, env: str) -> str:
    return f"{app}-{env}"


def result(app: str, env: str, strategy: str, outcome: str, *, release: Release | None = None,
           steps: Sequence[Mapping[str, Any]] = (), reason: str = "", **extra: Any) -> dict[str, Any]:
    return {"app": app, "env": env, "strategy": strategy, "outcome": outcome,
            "release": release.release_id if release else None, "reason": reason,
            "steps": [dict(s) for s in steps], **extra}


@dataclass(frozen=True)
class DeployOptions:
    health_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0
    monitor_s: float = 0.0  # blue-green: watch green this long before stopping blue
    steps: tuple[int, ...] = (5, 25, 50, 100)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    pause_at: tuple[int, ...] = ()  # canary weights after which a manual approval is needed
    scrape_app_metrics: bool = True


def _step(name: str, weight: int, t0: float, verdict: str, reason: str = "",
          metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "weight": weight, "duration_s": round(time.monotonic() - t0, 3), "verdict": verdict,
            "reason": reason, "metrics": dict(metrics or {})}


class DeployController:
    def __init__(self, target: DeployTarget, router: TrafficRouter, home: Path, env: str, app: str, *,
                 log: Log | None = None, approve: Approve | None = None) -> None:
        self.target, self.router, self.home, self.env, self.app = target, router, Path(home), env, app
        self.route = route_name(app, env)
        self.store = ReleaseStore(home, env, app)
        self.log: Log = log or (lambda _m: None)
        self.approve = approve

    # ------------------------------------------------------------------ helpers
    def _record(self, kind: str, res: Mapping[str, Any], release: Release | None) -> None:
        payload = {"app": self.app, "env": self.env, "strategy": res.get("strategy"), "outcome": res.get("outcome"),
                   "release": res.get("release"), "reason": res.get("reason", ""),
                   "content_hash": release.content_hash if release else None,
                   "version": release.version if release else None,
                   "steps": [{k: s.get(k) for k in ("name", "weight", "verdict", "duration_s")}
                             for s in res.get("steps", [])]}
        res_cl = record_in_cltree(self.home, kind, self.app, payload)
        if isinstance(res, dict):
            res["cltree"] = res_cl

    def _active_instance(self) -> tuple[Release, Instance] | None:
        a = self.store.active()
        if a is None or a.instance is None:
            return None
        if not self.target.is_alive(a.instance):
            self.log(f"active release {a.release.release_id} is not running; treating this as a first release")
            return None
        return a.release, a.instance

    def _start_healthy(self, release: Release, opts: DeployOptions,
                       steps: list[dict[str, Any]]) -> Instance | None:
        t0 = time.monotonic()
        inst = self.target.start(release)
        self.log(f"started {inst.instance_id} on {inst.endpoint}")
        h = self.target.wait_healthy(inst, timeout_s=opts.health_timeout_s)
        steps.append(_step("health", 0, t0, "passed" if h.ok else "failed", h.reason,
                           {"status_code": h.status_code, "seconds": round(h.seconds, 3)}))
        if h.ok:
            return inst
        self.log(f"health check failed: {h.reason}; stopping {inst.instance_id}")
        self.target.stop(inst, drain_timeout_s=2.0)
        return None

    def _retire(self, inst: Instance, opts: DeployOptions) -> bool:
        drained = self.router.drain(self.route, inst.endpoint, timeout_s=opts.drain_timeout_s)
        self.target.stop(inst, drain_timeout_s=opts.drain_timeout_s)
        return drained

    def _app_errors(self, inst: Instance) -> tuple[float, float] | None:
        import httpx

        try:
            r = httpx.get(f"http://{inst.endpoint}/metrics", timeout=0.5)
        except httpx.HTTPError:
            return None
        return parse_prometheus_errors(r.text) if r.status_code == 200 else None

    # ------------------------------------------------------------------ deploy
    def deploy(self, release: Release, strategy: str, opts: DeployOptions) -> dict[str, Any]:
        with self.store.locked():
            public = self.router.ensure_route(self.route)
            current = self._active_instance()
            if current is None:
                res = self._first(release, strategy, opts)
            elif strategy == "blue-green":
                res = self._blue_green(release, current, opts)
            else:
                res = self._canary(release, current, opts)
            res["endpoint"] = public
            res["url"] = f"http://{public}"
            self._record("release", res, release)
            self.store.prune_trees(self.home)
            return res

    def _first(self, release: Release, strategy: str, opts: DeployOptions) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        inst = self._start_healthy(release, opts, steps)
        if inst is None:
            self.store.add_history(release, "failed")
            return result(self.app, self.env, strategy, "failed", release=release, steps=steps,
                          reason=f"health check failed: {steps[-1]['reason']}")
        t0 = time.monotonic()
        self.router.set_upstreams(self.route, [Upstream(inst.endpoint, 1, release.release_id)])
        steps.append(_step("switch", 100, t0, "passed", "first release: nothing to compare with"))
        self.store.set_active(release, inst)
        return result(self.app, self.env, strategy, "promoted", release=release, steps=steps,
                      reason="first release", instance=inst.as_dict())

    def _blue_green(self, release: Release, current: tuple[Release, Instance], opts: DeployOptions,
                    *, strategy: str = "blue-green", success: str = "promoted") -> dict[str, Any]:
        blue_rel, blue = current
        steps: list[dict[str, Any]] = []
        green = self._start_healthy(release, opts, steps)
        if green is None:
            self.store.add_history(release, "failed")
            return result(self.app, self.env, strategy, "failed", release=release, steps=steps,
                          reason=f"health check failed: {steps[-1]['reason']}; {blue_rel.release_id} still serving",
                          previous=blue_rel.release_id)
        t0 = time.monotonic()
        self.router.set_upstreams(self.route, [Upstream(blue.endpoint, 0, blue_rel.release_id),
                                               Upstream(green.endpoint, 1, release.release_id)])
        switched_at = time.time()
        drained = self.router.drain(self.route, blue.endpoint, timeout_s=opts.drain_timeout_s)
        steps.append(_step("switch", 100, t0, "passed", "" if drained else
                           f"blue still had requests in flight after {opts.drain_timeout_s:g}s",
                           {"drained": drained}))
        if opts.monitor_s > 0:
            t1 = time.monotonic()
            an = StepAnalysis(opts.analysis, green.endpoint, None, self.router.counts(self.route))
            while time.monotonic() - t1 < opts.monitor_s and not an.failed:
                time.sleep(opts.analysis.tick_s)
                st = self.target.status(green)
                an.measure(time.monotonic() - t1, self.router.counts(self.route), canary_alive=st.alive,
                           canary_reason=st.reason)
            m = an.last.summary() if an.last else {}
            if an.failed:
                reason = "; ".join(an.last.reasons) if an.last else "monitor failed"
                self.router.set_upstreams(self.route, [Upstream(blue.endpoint, 1, blue_rel.release_id),
                                                       Upstream(green.endpoint, 0, release.release_id)])
                steps.append(_step("monitor", 100, t1, "failed", reason, m))
                self._retire(green, opts)
                self.router.set_upstreams(self.route, [Upstream(blue.endpoint, 1, blue_rel.release_id)])
                self.store.add_history(release, "rolled_back")
                return result(self.app, self.env, strategy, "rolled_back", release=release, steps=steps,
                              reason=f"monitor: {reason}; back on {blue_rel.release_id}",
                              previous=blue_rel.release_id)
            steps.append(_step("monitor", 100, t1, "passed", "", m))
        self.target.stop(blue, drain_timeout_s=opts.drain_timeout_s)
        self.router.set_upstreams(self.route, [Upstream(green.endpoint, 1, release.release_id)])
        self.store.set_active(release, green, success)
        return result(self.app, self.env, strategy, "promoted", release=release, steps=steps,
                      reason=f"replaced {blue_rel.release_id}", previous=blue_rel.release_id,
                      switched_at=switched_at, instance=green.as_dict())

    def _canary(self, release: Release, current: tuple[Release, Instance], opts: DeployOptions) -> dict[str, Any]:
        stable_rel, stable = current
        cfg = opts.analysis
        steps: list[dict[str, Any]] = []
        canary = self._start_healthy(release, opts, steps)
        if canary is None:
            self.store.add_history(release, "failed")
            return result(self.app, self.env, "canary", "failed", release=release, steps=steps,
                          reason=f"health check failed: {steps[-1]['reason']}; {stable_rel.release_id} still serving",
                          previous=stable_rel.release_id)

        def weights(w: int) -> None:
            # Caddy's weighted_round_robin serves each upstream its weight in a row: 95:5 would be
            # 95 requests to stable, then 5 to the canary. Reduced (19:1) the canary is sampled evenly.
            g = math.gcd(100 - w, w) or 1
            self.router.set_upstreams(self.route, [Upstream(stable.endpoint, (100 - w) // g, stable_rel.release_id),
                                                   Upstream(canary.endpoint, w // g, release.release_id)])

        for w in opts.steps:
            t0 = time.monotonic()
            start_counts = self.router.counts(self.route)
            app0 = self._app_errors(canary) if opts.scrape_app_metrics else None
            weights(w)
            self.log(f"canary at {w}%")
            an = StepAnalysis(cfg, canary.endpoint, stable.endpoint, start_counts, app0)
            held = time.monotonic()
            while an.last is None or time.monotonic() - held < cfg.interval_s:
                time.sleep(cfg.tick_s)
                st = self.target.status(canary)
                alive = st.alive and st.restarts == 0
                why = st.reason if st.restarts == 0 or not st.alive else f"restarted {st.restarts}x: {st.reason}"
                app = self._app_errors(canary) if app0 is not None and alive else None
                an.measure(time.monotonic() - t0, self.router.counts(self.route), canary_alive=alive,
                           canary_reason=why, app_errors=app)
                if an.failed:
                    break
            if not an.failed and an.consecutive > 0:  # the step ends on a failing measurement: not a pass
                an.consecutive = cfg.failure_limit + 1
            m = an.last.summary() if an.last else {}
            if an.failed:
                weights(0)
                zero_at = time.time()
                reason = "; ".join(an.last.reasons) if an.last else "analysis failed"
                self.log(f"canary failed at {w}%: {reason}; weight 0")
                steps.append(_step(f"canary {w}%", w, t0, "failed", reason, m))
                self._retire(canary, opts)
                self.router.set_upstreams(self.route, [Upstream(stable.endpoint, 1, stable_rel.release_id)])
                self.store.add_history(release, "rolled_back")
                return result(self.app, self.env, "canary", "rolled_back", release=release, steps=steps,
                              reason=f"canary failed at {w}%: {reason}; {stable_rel.release_id} serving",
                              previous=stable_rel.release_id, weight_zero_at=zero_at)
            verdict = an.verdict()
            if verdict == "inconclusive" and cfg.require_traffic:
                weights(0)
                steps.append(_step(f"canary {w}%", w, t0, "failed", "no canary traffic", m))
                self._retire(canary, opts)
                self.router.set_upstreams(self.route, [Upstream(stable.endpoint, 1, stable_rel.release_id)])
                self.store.add_history(release, "rolled_back")
                return result(self.app, self.env, "canary", "rolled_back", release=release, steps=steps,
                              reason="no canary traffic to analyse", previous=stable_rel.release_id)
            steps.append(_step(f"canary {w}%", w, t0, verdict, "", m))
            if w in opts.pause_at and w != 100 and self.approve is not None:
                t1 = time.monotonic()
                ok = self.approve(w)
                steps.append(_step(f"approval at {w}%", w, t1, "passed" if ok else "failed",
                                   "" if ok else "rejected"))
                if not ok:
                    weights(0)
                    self._retire(canary, opts)
                    self.router.set_upstreams(self.route, [Upstream(stable.endpoint, 1, stable_rel.release_id)])
                    self.store.add_history(release, "rolled_back")
                    return result(self.app, self.env, "canary", "rolled_back", release=release, steps=steps,
                                  reason=f"not approved at {w}%", previous=stable_rel.release_id)
        t0 = time.monotonic()
        drained = self._retire(stable, opts)
        self.router.set_upstreams(self.route, [Upstream(canary.endpoint, 1, release.release_id)])
        steps.append(_step("finalise", 100, t0, "passed", "" if drained else "stable had requests in flight"))
        self.store.set_active(release, canary)
        return result(self.app, self.env, "canary", "promoted", release=release, steps=steps,
                      reason=f"replaced {stable_rel.release_id}", previous=stable_rel.release_id,
                      instance=canary.as_dict())

    # ------------------------------------------------------------------ rollback
    def rollback(self, opts: DeployOptions) -> dict[str, Any]:
        with self.store.locked():
            self.router.ensure_route(self.route)
            target_rel = self.store.previous_good()
            active = self.store.active()
            if target_rel is None:
                res = result(self.app, self.env, "blue-green", "failed",
                             reason="no previous good release to return to",
                             release=active.release if active else None)
                return res
            current = self._active_instance()
            self.log(f"rolling back to {target_rel.release_id}")
            if current is None:
                res = self._first(target_rel, "blue-green", opts)
            else:
                res = self._blue_green(target_rel, current, opts, success="rolled_back_to")
            if res["outcome"] == "promoted":
                if active is not None:
                    self.store.add_history(active.release, "rolled_back")
                res["outcome"] = "rolled_back"
                res["reason"] = f"back on {target_rel.release_id}" + (
                    f" (was {active.release.release_id})" if active else "")
                res["rolled_back_from"] = active.release.release_id if active else None
            self._record("rollback", res, target_rel)
            return res


def stop_release(target: DeployTarget, inst: Instance) -> None:
    try:
        target.stop(inst, drain_timeout_s=2.0)
    except DeployError:
        pass
