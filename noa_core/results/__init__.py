"""Typed results of the NOA flows: one pydantic model per flow, with field docs.

Every flow in ``flows/`` returns one of these; ``noa ... --json`` prints its
``model_dump(mode="json")`` and the API server uses the same models as response schemas.
Their JSON schemas live in ``schemas/results/`` (``python scripts/export_schemas.py``).
Prefect-free: the domain layer may import this package.
"""

from noa_core.results.apps import SwitchReport, SwitchStep
from noa_core.results.backup import (
    BackupReport,
    CleanupReport,
    ForgetReport,
    PruneReport,
    RestoreReport,
    SnapshotInfo,
    VerifyReport,
)
from noa_core.results.base import FlowResult, ResultPart
from noa_core.results.cicd import CicdReport, CicdStage
from noa_core.results.deploy import DeployReport, DeployStep, RollbackReport
from noa_core.results.drop import (
    AnalyzerStatus,
    ConfidenceReport,
    Contribution,
    DropReport,
    TestsSummary,
)
from noa_core.results.merge import MergeReport
from noa_core.results.pipeline import PipelineReport
from noa_core.results.stages import (
    ErrorHandlingReport,
    GateReport,
    StageReport,
    WorkflowReport,
)
from noa_core.results.swarm import LanguageSwarmReport, SwarmSummary
from noa_core.results.workspace import WorkspaceReport

__all__ = [
    "AnalyzerStatus",
    "BackupReport",
    "CicdReport",
    "CicdStage",
    "CleanupReport",
    "ConfidenceReport",
    "Contribution",
    "DeployReport",
    "DeployStep",
    "DropReport",
    "ErrorHandlingReport",
    "FlowResult",
    "ForgetReport",
    "GateReport",
    "LanguageSwarmReport",
    "MergeReport",
    "PipelineReport",
    "PruneReport",
    "RestoreReport",
    "ResultPart",
    "RollbackReport",
    "SnapshotInfo",
    "StageReport",
    "SwarmSummary",
    "SwitchReport",
    "SwitchStep",
    "TestsSummary",
    "VerifyReport",
    "WorkflowReport",
    "WorkspaceReport",
]
