"""The model process for real: a SIGSEGV / SIGKILL mid-request, a hang, a restart after it,
extra buffer types off unless asked for, and the API server's long-lived model process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from noa_core.analysis.llm import LlmContext, find_model_path, llm_opinion
from noa_core.analysis.llm_client import (
    ModelProcess,
    ModelProcessDied,
    ModelTimedOut,
    WorkerLimits,
)
from noa_core.analysis.llm_model import EXTRA_BUFFERS_ENV
from noa_core.server.inference import Inference, ModelProcessFailed
from tests.llm_helpers import InFlightKiller, needs_ai, pid_alive

CTX = LlmContext(project="hello-service", languages={"Python": 4200},
                 readme_excerpt="A small greeting service over HTTP with a health endpoint.",
                 file_sample=("src/hello_service/server.py", "tests/test_server.py"), is_update=False)
MESSAGES = [{"role": "user", "content": "Say hello."}]


@needs_ai
@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGSEGV, "model process died: signal 11"),
                                             (signal.SIGKILL, "model process died: signal 9")])
def test_killed_mid_request_is_unknown_with_the_reason_and_the_next_request_gets_a_new_process(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig: int, reason: str) -> None:
    killer = InFlightKiller(monkeypatch, tmp_path, sig)
    result = llm_opinion(CTX, max_tokens=8)
    killed = killer.join()
    assert result.status == "unknown"
    assert result.reason == reason
    assert "hello-service" in result.data["prompt"]      # what was asked stays in the report
    assert not pid_alive(killed)

    killer.stop_stalling()
    again = llm_opinion(CTX, max_tokens=8)
    assert again.status == "ok", again.reason
    assert again.data["process"]["pid"] != killed


@needs_ai
def test_one_process_object_restarts_its_child_after_a_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with ModelProcess(find_model_path(), limits=WorkerLimits(request_timeout=60)) as model:
        model.start()
        first = model.pid
        assert model.chat(MESSAGES, max_tokens=4).text      # the same load answers several requests
        assert model.chat(MESSAGES, max_tokens=4).text
        assert model.starts == 1 and model.pid == first

        killer = InFlightKiller(monkeypatch, tmp_path, signal.SIGSEGV)
        model.close()                                         # the next child sees the stall knob
        with pytest.raises(ModelProcessDied, match=r"^model process died: signal 11$"):
            model.chat(MESSAGES, max_tokens=4)
        assert killer.join() != first

        killer.stop_stalling()
        assert model.chat(MESSAGES, max_tokens=4).text
        assert model.starts == 3 and model.pid not in (first, killer.killed_pid)


@needs_ai
def test_a_hung_model_process_times_out_and_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    killer = InFlightKiller(monkeypatch, tmp_path, None, stall_seconds=60)
    result = llm_opinion(CTX, max_tokens=8, limits=WorkerLimits(request_timeout=2))
    assert result.status == "unknown"
    assert result.reason == "timed out after 2 s"
    assert result.seconds < 30
    pid = int(killer.marker.read_text())
    assert not pid_alive(pid)                                # killed and reaped, not left hanging


@needs_ai
def test_timeout_error_names_the_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    InFlightKiller(monkeypatch, tmp_path, None, stall_seconds=60)
    with ModelProcess(find_model_path(), limits=WorkerLimits(request_timeout=1.5)) as model:
        with pytest.raises(ModelTimedOut, match=r"^timed out after 1\.5 s$"):
            model.chat(MESSAGES, max_tokens=4)
        assert not model.alive


@needs_ai
def test_memory_limit_is_set_on_the_child() -> None:
    with ModelProcess(find_model_path(), limits=WorkerLimits(memory_mb=3072)) as model:
        info = model.start()
        assert info["memory_limit_bytes"] == 3072 * 1024 * 1024
        limits = Path(f"/proc/{model.pid}/limits").read_text()
        line = next(ln for ln in limits.splitlines() if ln.startswith("Max address space"))
        assert str(3072 * 1024 * 1024) in line


@needs_ai
def test_a_memory_limit_too_small_for_the_model_is_an_answer_not_a_crash() -> None:
    result = llm_opinion(CTX, max_tokens=8, limits=WorkerLimits(memory_mb=64))
    assert result.status == "unknown"
    assert result.reason.startswith(("model process died", "model failed"))


@needs_ai
def test_extra_buffer_types_are_off_in_the_model_process_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTRA_BUFFERS_ENV, raising=False)
    with ModelProcess(find_model_path()) as model:
        info = model.start()
    assert info["use_extra_bufts"] is False and info["extra_buffers_requested"] is False
    monkeypatch.setenv(EXTRA_BUFFERS_ENV, "1")
    with ModelProcess(find_model_path()) as model:
        assert model.start()["use_extra_bufts"] is True


LOAD_SCRIPT = """
import sys
from pathlib import Path
from noa_core.analysis.llm_model import LocalLlm
m = LocalLlm(Path(sys.argv[1]), n_ctx=256, extra_buffers=sys.argv[2] == "on", verbose=True)
print("use_extra_bufts", m.use_extra_bufts)
"""


@needs_ai
def test_use_extra_bufts_false_reaches_llama_cpp_model_load() -> None:
    """llama.cpp itself logs the repacked buffer type it is offered only when extra buffers are on."""
    runs = {}
    for mode in ("on", "off"):
        done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(find_model_path()), mode],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[mode] = done
    assert "use_extra_bufts False" in runs["off"].stdout
    assert "use_extra_bufts True" in runs["on"].stdout
    assert "REPACK" not in runs["off"].stderr.replace("REPACK = 1", "")
    if "REPACK = 1" in runs["on"].stderr:                     # this build has the repack buffer type
        assert "CPU_REPACK" in runs["on"].stderr


@needs_ai
def test_server_inference_keeps_one_process_and_restarts_it_after_a_crash(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    inference = Inference(limits=WorkerLimits(request_timeout=60))
    try:
        first = asyncio.run(inference.generate("chat", MESSAGES, max_tokens=4))
        pid = inference.process.pid
        asyncio.run(inference.generate("completion", "Hello", max_tokens=4))
        assert first.text and inference.process.pid == pid and inference.process.starts == 1

        killer = InFlightKiller(monkeypatch, tmp_path, signal.SIGKILL)
        inference.process.close()
        with pytest.raises(ModelProcessFailed, match=r"^model process died: signal 9$"):
            asyncio.run(inference.generate("chat", MESSAGES, max_tokens=4))
        killer.join()
        killer.stop_stalling()
        after = asyncio.run(inference.generate("chat", MESSAGES, max_tokens=4))
        assert after.text and inference.process.pid not in (pid, killer.killed_pid)
    finally:
        inference.close()


def test_protocol_round_trip_and_refusals() -> None:
    from noa_core.analysis.llm_protocol import (
        ProtocolError,
        Reply,
        Request,
        decode_reply,
        decode_request,
        encode,
    )

    req = Request(id=3, op="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert decode_request(encode(req)) == req
    reply = Reply(id=3, ok=True, text="hello", completion_tokens=1, info={"pid": 1})
    assert decode_reply(encode(reply)) == reply
    for bad in (b"not json", b"[1]", b'{"id": 0, "op": "chat"}', b'{"id": 1, "op": "shell"}',
                b'{"id": 1, "op": "chat", "max_tokens": 0}', b'{"id": 1, "op": "chat", "extra": 1}'):
        with pytest.raises(ProtocolError):
            decode_request(bad)


@needs_ai
def test_a_process_without_a_model_answers_info_and_refuses_generation() -> None:
    from noa_core.analysis.llm_client import ModelRequestFailed

    with ModelProcess(None) as model:
        info = model.info()
        assert info["features"] and "model" not in info
        with pytest.raises(ModelRequestFailed, match="no model loaded"):
            model.chat(MESSAGES, max_tokens=4)
        assert model.alive and model.starts == 1           # a refused request is not a dead process
        with pytest.raises(ModelRequestFailed, match="bad request"):
            model.chat(MESSAGES, max_tokens=0)
