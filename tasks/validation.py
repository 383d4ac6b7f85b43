"""Validation: the drop's own tests, run isolated in a copy of its sandbox worktree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from noa_core.analysis.interface import AnalyzerResult
from noa_core.config import NoaSettings
from noa_core.manifest import NoaManifest
from noa_core.pyenv.provider import prepare_python_env
from noa_core.validation.runner import is_python_command, run_test_suite, suggest_pythonpath


def test_plan(manifest: NoaManifest, results: dict[str, AnalyzerResult], tree: Path) -> tuple[list[str] | None, list[str]]:
    """(command, pythonpath): noa.yaml's first, then what the tests analyzer found."""
    command = list(manifest.test.command) if manifest.test.command else None
    pythonpath = list(manifest.test.pythonpath)
    tests = results.get("tests")
    if command is None and tests is not None and tests.status != "skipped":
        found = tests.data.get("command")
        command = list(found) if found else None
    if not pythonpath and command and command[0].startswith("python"):
        pythonpath = suggest_pythonpath(tree)
    return command, pythonpath


@task(name="validate-in-sandbox", cache_policy=NO_CACHE)
def validate_task(settings: NoaSettings, tree: Path, manifest: NoaManifest, results: dict[str, AnalyzerResult],
                  drop_id: str) -> dict[str, Any]:
    command, pythonpath = test_plan(manifest, results, tree)
    if not command:
        return {"command": None, "status": "skipped", "reason": "no test suite found"}
    limits = settings.exec.model_copy(update={"wall_seconds": manifest.test.timeout_s})
    work_parent = settings.layout().tmp / "validate" / drop_id
    work_parent.mkdir(parents=True, exist_ok=True)
    # NOA_HOME (registry, other drops, reports) is hidden from the dropped code; its work copy stays.
    hide = (str(settings.layout().root),)
    env = (prepare_python_env(tree, home=settings.layout().root, limits=limits, config=manifest.python_env,
                              hide_paths=hide) if is_python_command(command) else None)
    run = run_test_suite(tree, command, work_parent=work_parent, limits=limits, pythonpath=pythonpath,
                         keep_work_copy=False, hide_paths=hide, python_env=env, deps_home=settings.layout().root)
    counts = run.counts
    reason = "; ".join(run.notes)
    if run.retried_without_addopts:
        reason = "; ".join(filter(None, [reason, "re-run with addopts cleared (pytest usage error)"]))
    return {"command": list(run.command), "status": run.outcome, "reason": reason,
            "passed": counts.passed if counts else 0, "failed": counts.failed if counts else 0,
            "errors": counts.errors if counts else 0, "skipped": counts.skipped if counts else 0,
            "subtests_passed": counts.subtests_passed if counts else 0,
            "subtests_failed": counts.subtests_failed if counts else 0,
            "summary_line": counts.summary_line if counts else "", "seconds": round(run.seconds, 3),
            "isolation": run.isolation, "log": str(run.log_path),
            "environment": env.summary() if env is not None else None}
