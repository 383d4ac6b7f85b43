"""Analyzer tasks: run in parallel, results cached by (analyzer, version, tree hash).

The cache key leaves the tree's path out on purpose: the same content dropped twice (a
re-drop, a mirror) reuses every analyzer result. Each result records the drop that
computed it, which is how the report tells a cached result from a fresh one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem

from noa_core.analysis.interface import Analyzer
from noa_core.analysis.llm import context_from_tree, llm_opinion
from noa_core.analysis.registry import default_analyzers, load_plugin_analyzers, run_analyzer


def all_analyzers() -> dict[str, Analyzer]:
    found: dict[str, Analyzer] = {a.name: a for a in default_analyzers()}
    for plugin in load_plugin_analyzers():
        found.setdefault(plugin.name, plugin)
    return found


def analysis_cache(home: Path) -> LocalFileSystem:
    """Where analyzer results persist: inside NOA_HOME, so each workspace keeps its own cache."""
    path = home / "cache" / "analysis"
    path.mkdir(parents=True, exist_ok=True)
    block = LocalFileSystem(basepath=str(path))
    # Prefect wants result storage saved server-side; one block per NOA_HOME.
    name = "noa-analysis-" + hashlib.blake2s(str(home.resolve()).encode(), digest_size=6).hexdigest()
    block.save(name, overwrite=True)
    return block


def _analysis_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    return f"noa-analyzer-{parameters['name']}-{parameters['version']}-{parameters['tree_hash']}"


@task(name="analyze", task_run_name="analyze-{name}", cache_key_fn=_analysis_cache_key,
      persist_result=True, result_serializer="json", retries=1, retry_delay_seconds=1)
def analyze_task(name: str, version: str, tree: Path, tree_hash: str, drop_id: str) -> dict[str, Any]:
    analyzer = all_analyzers()[name]
    result = run_analyzer(analyzer, tree).as_dict()
    result["computed_by"] = drop_id
    return result


@task(name="ai-opinion", cache_policy=NO_CACHE)
def ai_opinion_task(tree: Path, project: str, is_update: bool, languages: dict[str, Any],
                    model_path: Path | None, max_tokens: int) -> dict[str, Any]:
    """The local LLM's summary and feature / bug-fix / experimental opinion."""
    ctx = context_from_tree(tree, project, is_update, languages.get("data", {}).get("by_bytes", {}))
    return llm_opinion(ctx, model_path=model_path, max_tokens=max_tokens).as_dict()
