"""Deploy a project directory / roll an app back: manifest -> release -> controller.

Prefect-free entry points used by ``tasks/deploy.py`` (and usable from plain Python).
Options (``noa deploy`` flags, flow ``**options``) override ``noa.yaml``'s ``deploy``
section: ``interval_s``, ``steps``, ``tick_s``, ``max_error_rate``, ``max_p99_ms``,
``max_latency_ratio``, ``failure_limit``, ``min_requests``, ``require_traffic``,
``health_timeout_s``, ``drain_timeout_s``, ``monitor_s``, ``pause_at``, ``target``,
``max_restarts``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from noa_core.deploy.analysis import AnalysisConfig
from noa_core.deploy.controller import Approve, DeployController, DeployOptions, Log, result
from noa_core.deploy.interface import DeployError, DeployTarget, TargetUnavailable, TrafficRouter
from noa_core.errors import BadInput
from noa_core.manifest import MANIFEST_FILENAME, NoaManifest, load_manifest

__all__ = ["ENVS", "NO_TARGET", "STRATEGIES", "deploy_options", "deploy_project", "make_target", "rollback_app"]

ENVS = ("staging", "production")
STRATEGIES = ("blue-green", "canary")
BUILTIN_TARGETS = ("local", "docker", "kubernetes")
NO_TARGET = "skipped: no deploy target (noa.yaml has no run.command)"
_ANALYSIS_KEYS = {f.name for f in fields(AnalysisConfig)}


def plugin_targets() -> dict[str, Any]:
    """Deploy targets from plugins: each ``noa.plugins`` entry point's ``deploy_targets``, a mapping of
    target name -> factory ``(home, **options) -> DeployTarget``. Built-in names cannot be taken."""
    from noa_core.plugins import plugin_attributes

    found: dict[str, Any] = {}
    for _plugin, targets in plugin_attributes("deploy_targets"):
        for name, factory in dict(targets).items():
            if name not in BUILTIN_TARGETS and callable(factory):
                found.setdefault(str(name), factory)
    return found


def make_target(kind: str, home: Path, *, env: str = "", log: Log | None = None, **kw: Any) -> DeployTarget:
    """``local`` (default), the ``docker`` / ``kubernetes`` adapters, or a plugin's target.

    ``docker``: containers on the host network when the engine has no bridge, NOA's runtime
    base image, labelled with ``env`` and NOA_HOME (:mod:`noa_core.deploy.docker_target`)."""
    if kind == "local":
        from noa_core.deploy.local_target import LocalTarget

        return LocalTarget(home, max_restarts=int(kw.get("max_restarts", 3)))
    if kind == "docker":
        from noa_core.deploy.docker_target import DockerTarget  # type: ignore[import-not-found]

        kw = {"network": "auto", "base_image": None, "home": Path(home), "deploy_env": env, "log": log, **kw}
        return DockerTarget(**kw)
    if kind == "kubernetes":
        from noa_core.deploy.kubernetes_target import KubernetesTarget  # type: ignore[import-not-found]

        return KubernetesTarget(**kw)  # type: ignore[no-any-return]
    plugins = plugin_targets()
    if kind in plugins:
        target = plugins[kind](Path(home), **kw)
        if not isinstance(target, DeployTarget):
            raise BadInput(f"deploy target {kind!r} from a plugin is not a DeployTarget")
        return target
    raise BadInput(f"unknown deploy target {kind!r} ({', '.join([*BUILTIN_TARGETS, *sorted(plugins)])})")


def make_router(home: Path) -> TrafficRouter:
    from noa_core.deploy.caddy_router import CaddyRouter

    return CaddyRouter(home)


def deploy_options(manifest: NoaManifest, env: str, strategy: str | None,
                   options: Mapping[str, Any]) -> tuple[str, DeployOptions]:
    if env not in ENVS:
        raise BadInput(f"--env must be one of {', '.join(ENVS)} (got {env!r})")
    if strategy is None:
        strategy = "blue-green" if env == "staging" else manifest.deploy.strategy
    if strategy not in STRATEGIES:
        raise BadInput(f"--strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    d = manifest.deploy
    a = AnalysisConfig(interval_s=d.interval_s, max_error_rate=d.max_error_rate, max_p99_ms=d.max_p99_ms,
                       max_latency_ratio=d.max_latency_ratio, failure_limit=d.failure_limit,
                       require_traffic=d.require_traffic)
    over = {k: v for k, v in options.items() if k in _ANALYSIS_KEYS and v is not None}
    try:
        a = replace(a, **over)
    except TypeError as exc:
        raise BadInput(f"bad analysis option: {exc}") from None
    steps = tuple(int(s) for s in (options.get("steps") or d.canary_steps))
    if not steps or steps[-1] != 100 or any(b <= a_ for a_, b in zip(steps, steps[1:])) or steps[0] < 1:
        raise BadInput(f"canary steps must increase and end at 100 (got {list(steps)})")
    opts = DeployOptions(
        health_timeout_s=float(options.get("health_timeout_s") or 30.0),
        drain_timeout_s=float(options.get("drain_timeout_s") or 10.0),
        monitor_s=float(options.get("monitor_s") or d.monitor_s), steps=steps, analysis=a,
        pause_at=tuple(int(x) for x in (options.get("pause_at") or d.pause_at)),
    )
    return strategy, opts


def deploy_project(home: Path, project_dir: Path, env: str = "staging", strategy: str | None = None,
                   app: str | None = None, options: Mapping[str, Any] | None = None, *,
                   log: Log | None = None, approve: Approve | None = None) -> dict[str, Any]:
    from noa_core.deploy.releases import make_release

    options = dict(options or {})
    project_dir = Path(project_dir)
    if not (project_dir / MANIFEST_FILENAME).is_file():
        raise BadInput(f"{project_dir}: no {MANIFEST_FILENAME}")
    manifest = load_manifest(project_dir / MANIFEST_FILENAME)
    strategy, opts = deploy_options(manifest, env, strategy, options)
    name = app or manifest.name
    if manifest.run.command is None:
        return result(name, env, strategy, "skipped", reason=NO_TARGET)
    target = make_target(str(options.get("target") or "local"), home, env=env, log=log,
                         **({"max_restarts": options["max_restarts"]} if options.get("max_restarts") else {}))
    avail = target.availability()
    if not avail.ok:
        return result(name, env, strategy, "skipped", reason=avail.reason)
    release = make_release(project_dir, manifest, home, app=name)
    try:
        release = target.prepare(release)  # docker: the image build; nothing runs or moves yet
    except TargetUnavailable as exc:
        return result(name, env, strategy, "skipped", release=release, reason=exc.one_line())
    except DeployError as exc:
        return prepare_failed(home, env, name, strategy, release, exc)
    ctl = DeployController(target, make_router(home), home, env, name, log=log, approve=approve)
    try:
        return ctl.deploy(release, strategy, opts)
    except TargetUnavailable as exc:
        return result(name, env, strategy, "skipped", release=release, reason=exc.one_line())


def prepare_failed(home: Path, env: str, app: str, strategy: str, release: Any, exc: DeployError) -> dict[str, Any]:
    """The result of a deploy whose release could not be prepared (a failed image build):
    ``failed``, the active release untouched and still serving."""
    from noa_core.deploy.releases import ReleaseStore

    store = ReleaseStore(home, env, app)
    active = store.active()
    store.add_history(release, "failed")
    tail = list(getattr(exc, "log_tail", []) or [])
    step = {"name": "build", "weight": 0, "duration_s": 0.0, "verdict": "failed", "reason": exc.one_line(),
            "metrics": {"log_tail": tail} if tail else {}}
    serving = f"; {active.release.release_id} still serving" if active is not None else ""
    return result(app, env, strategy, "failed", release=release, steps=[step], reason=exc.one_line() + serving,
                  previous=active.release.release_id if active is not None else None)


def rollback_app(home: Path, app: str, env: str = "production", *, target: str = "local",
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    if env not in ENVS:
        raise BadInput(f"--env must be one of {', '.join(ENVS)} (got {env!r})")
    kind = _deployed_on(home, app, env, target)
    ctl = DeployController(make_target(kind, home, env=env, log=log), make_router(home), home, env, app, log=log)
    return ctl.rollback(DeployOptions())


def _deployed_on(home: Path, app: str, env: str, target: str) -> str:
    """``target``, except that the default ``local`` yields to the target the active release runs on."""
    from noa_core.deploy.releases import ReleaseStore

    active = ReleaseStore(home, env, app).active()
    if target == "local" and active is not None and active.instance is not None:
        return active.instance.target
    return target


def restore_active(home: Path, app: str, env: str, *, target: str = "local") -> dict[str, Any]:
    """After a deploy broke off: send all traffic back to the active release if it runs,
    else roll back to the previous good one."""
    from noa_core.deploy.controller import route_name
    from noa_core.deploy.interface import Upstream
    from noa_core.deploy.releases import ReleaseStore

    target = _deployed_on(home, app, env, target)
    t = make_target(target, home, env=env)
    active = ReleaseStore(home, env, app).active()
    if active is not None and active.instance is not None and t.is_alive(active.instance):
        make_router(home).set_upstreams(route_name(app, env),
                                        [Upstream(active.instance.endpoint, 1, active.release.release_id)])
        return result(app, env, "blue-green", "rolled_back", release=active.release,
                      reason=f"traffic back on {active.release.release_id}")
    return rollback_app(home, app, env, target=target)
