"""Flow run names a person can place (``deploy-hello-service-production``, not ``pink-vole``),
made from the run's own parameters. Each flow names its runs with one of these
(``@flow(flow_run_name=...)``); they only read ``prefect.runtime.flow_run.parameters``."""

from __future__ import annotations

from typing import Any

__all__ = ["app_switch_run_name", "backup_run_name", "cleanup_run_name", "deploy_run_name", "forget_run_name",
           "restore_run_name", "rollback_run_name", "verify_run_name"]

MAX = 60


def _params() -> dict[str, Any]:
    from prefect.runtime import flow_run

    return dict(flow_run.parameters or {})


def tail(value: Any, default: str) -> str:
    """The last path (or URL) component of ``value``, at most 60 characters; ``default`` when empty."""
    text = str(value or "").strip().rstrip("/")
    return (text.rsplit("/", 1)[-1] or default)[:MAX] if text else default


def _where(p: dict[str, Any]) -> str:
    """A backup repository as named by its block, else its path's last part."""
    return str(p.get("block") or "")[:MAX] or tail(p.get("repo"), "default-repo")


def deploy_run_name() -> str:
    p = _params()
    return f"deploy-{str(p.get('app') or '')[:MAX] or tail(p.get('project_dir'), 'project')}-{p.get('env') or 'staging'}"


def rollback_run_name() -> str:
    p = _params()
    return f"rollback-{str(p.get('app'))[:MAX]}-{p.get('env') or 'production'}"


def backup_run_name() -> str:
    p = _params()
    return f"backup-{tail(p.get('source'), 'noa-home')}-to-{_where(p)}"


def restore_run_name() -> str:
    p = _params()
    return f"restore-{str(p.get('snapshot') or '?')[:12]}-to-{tail(p.get('target'), 'target')}"


def verify_run_name() -> str:
    p = _params()
    return f"verify-{_where(p)}" + ("" if p.get("read_data", True) else "-metadata")


def forget_run_name() -> str:
    p = _params()
    return f"forget-{_where(p)}" + ("-dry-run" if p.get("dry_run") else "")


def cleanup_run_name() -> str:
    p = _params()
    return "cleanup-" + tail(p.get("home"), "noa-home") + ("-dry-run" if p.get("dry_run", True) else "")


def app_switch_run_name() -> str:
    p = _params()
    return f"switch-{str(p.get('from_app') or 'current')[:MAX]}-to-{str(p.get('app'))[:MAX]}"
