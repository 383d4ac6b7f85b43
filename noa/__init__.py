"""NOA from Python: ``import noa`` - the flows a user calls and their typed results.

Every flow is a Prefect 3 flow (defined in the ``flows`` package, one module per documented
flow) and returns a typed result, a pydantic model from :mod:`noa_core.results`, re-exported
here with the flows::

    import noa
    report = noa.code_drop("examples/hello-service", home="/tmp/noa", use_ai=False)
    print(report.drop_id, report.sandbox, report.tests.status)   # a DropReport

(The surface is ``noa``, not ``flows``: in ``flows`` a flow and the module holding it share a
name - ``flows.code_drop`` is the module - so ``flows`` cannot also export the flows.)

=======================  ====================  ===================================================
flow                     returns               what it does
=======================  ====================  ===================================================
code_drop                DropReport            fetch, analyse, score, adapt, sandbox, validate
sandbox_merge            MergeReport           merge sandboxes into D; failing drops stay held
swarm                    SwarmSummary          the project's checks by language swarms, sharded
python_swarm, rust_...   LanguageSwarmReport   one language swarm (also go_swarm, javascript_swarm)
unified_workflow         WorkflowReport        the seven stages behind their gates
noa_pipeline             PipelineReport        drop -> merge -> swarm -> seven stages -> deploy
cicd_pipeline            CicdReport            one commit: validate, build, test, deploy, monitor
deploy / rollback        DeployReport /        blue-green (staging) or canary (production) behind
                         RollbackReport        Caddy; back to the previous good release
backup / restore         BackupReport /        snapshots of NOA_HOME; restore byte for byte
                         RestoreReport
verify / cleanup /       VerifyReport /        check the repository; remove stale data; retention
forget                   CleanupReport /
                         ForgetReport
app_switch               SwitchReport          move a service's traffic to another app
workspace_maintenance    WorkspaceReport       scan a workspace into the registry, draw its graph
error_handling           ErrorHandlingReport   log, change log, alert, rollback when critical
=======================  ====================  ===================================================

The seven stage flows (``analysis_stage`` ... ``production_stage``) return a StageReport.
Async flows (all but ``code_drop`` and ``sandbox_merge``) are awaited, or run from sync code
with :func:`run_in_process` (``noa.run_in_process(noa.deploy, project_dir=..., env="staging")``),
which also turns off the per-run heartbeat thread.

What they need running: a Prefect API. Set ``PREFECT_API_URL`` to a server (``noa prefect
start`` starts the embedded one under NOA_HOME and prints its URL), or run inside
``prefect.testing.utilities.prefect_test_harness()``; without either, Prefect starts a
temporary server for the process. NOA_HOME is the ``home`` argument (default
``$NOA_HOME`` or ``./.noa``). ``git`` must be installed; ``mode="distributed"`` needs
workers on the swarm work pools (``noa swarm up``); deploys start NOA's Caddy.

Errors: refused input raises :class:`~noa_core.errors.BadInput` (``HostileInput``,
``LimitExceeded``, ``ManifestError`` are kinds of it; ``noa`` exits 2 on them); any other
:class:`~noa_core.errors.NoaError` is a job that could not run. A job that ran and said no
(a failed gate, a conflict, a rolled-back canary) is not an error: it is in the result
(``verdict``, ``outcome``, ``status``).

Attributes load on first use, so ``import noa`` stays cheap; ``from flows.code_drop
import code_drop`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.app_switch import app_switch
    from flows.backup import backup, cleanup, forget, restore, verify
    from flows.cicd_pipeline import cicd_pipeline
    from flows.code_drop import code_drop
    from flows.deploy import deploy, rollback
    from flows.error_handling import error_handling
    from flows.pipeline import noa_pipeline, run_pipeline
    from flows.runtime import run_in_process
    from flows.sandbox_merge import sandbox_merge
    from flows.stages import (
        analysis_stage,
        build_stage,
        performance_stage,
        production_stage,
        security_stage,
        staging_stage,
        testing_stage,
    )
    from flows.swarm import go_swarm, javascript_swarm, python_swarm, rust_swarm, swarm
    from flows.unified_workflow import unified_workflow
    from flows.workspace import workspace_maintenance
    from noa_core.results import (
        AnalyzerStatus,
        BackupReport,
        CicdReport,
        CleanupReport,
        DeployReport,
        DropReport,
        ErrorHandlingReport,
        FlowResult,
        ForgetReport,
        LanguageSwarmReport,
        MergeReport,
        PipelineReport,
        RestoreReport,
        RollbackReport,
        StageReport,
        SwarmSummary,
        SwitchReport,
        TestsSummary,
        VerifyReport,
        WorkflowReport,
        WorkspaceReport,
    )

#: public name -> the module that defines it
_FLOWS: dict[str, str] = {
    "code_drop": "flows.code_drop", "sandbox_merge": "flows.sandbox_merge", "swarm": "flows.swarm",
    **{f"{lang}_swarm": "flows.swarm" for lang in ("python", "rust", "go", "javascript")},
    "unified_workflow": "flows.unified_workflow", "noa_pipeline": "flows.pipeline", "run_pipeline": "flows.pipeline",
    "cicd_pipeline": "flows.cicd_pipeline", "deploy": "flows.deploy", "rollback": "flows.deploy",
    "backup": "flows.backup", "restore": "flows.backup", "verify": "flows.backup", "cleanup": "flows.backup",
    "forget": "flows.backup", "app_switch": "flows.app_switch", "workspace_maintenance": "flows.workspace",
    "error_handling": "flows.error_handling", "run_in_process": "flows.runtime",
    **{f"{s}_stage": "flows.stages" for s in ("analysis", "testing", "performance", "security", "build", "staging",
                                              "production")},
}
__all__ = [
    "AnalyzerStatus", "BackupReport", "CicdReport", "CleanupReport", "DeployReport", "DropReport",
    "ErrorHandlingReport", "FlowResult", "ForgetReport", "LanguageSwarmReport", "MergeReport", "PipelineReport",
    "RestoreReport", "RollbackReport", "StageReport", "SwarmSummary", "SwitchReport", "TestsSummary",
    "VerifyReport", "WorkflowReport", "WorkspaceReport", "analysis_stage", "app_switch", "backup", "build_stage",
    "cicd_pipeline", "cleanup", "code_drop", "deploy", "error_handling", "forget", "go_swarm", "javascript_swarm",
    "noa_pipeline", "performance_stage", "production_stage", "python_swarm", "restore", "rollback",
    "run_in_process", "run_pipeline", "rust_swarm", "sandbox_merge", "security_stage", "staging_stage", "swarm",
    "testing_stage", "unified_workflow", "verify", "workspace_maintenance",
]
_RESULTS = frozenset(__all__) - set(_FLOWS)


def __getattr__(name: str) -> Any:
    if name in _FLOWS:
        value = getattr(importlib.import_module(_FLOWS[name]), name)
    elif name in _RESULTS:
        value = getattr(importlib.import_module("noa_core.results"), name)
    else:
        raise AttributeError(f"module 'noa' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
