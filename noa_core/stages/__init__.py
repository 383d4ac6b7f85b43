"""The seven stages of the unified workflow: results, gates and policies (Prefect-free).

analysis -> testing -> performance -> security -> build -> staging -> production; a
failed gate stops the later stages. The flows are in ``flows/stages.py`` and
``flows/unified_workflow.py``.
"""

from noa_core.stages.result import STAGES, Gate, StageResult, skipped_stage, verdict_of

__all__ = ["STAGES", "Gate", "StageResult", "skipped_stage", "verdict_of"]
