"""The model process: ``python -m noa_core.analysis.llm_worker [--model PATH] [--memory-mb N]``.

Started by :class:`noa_core.analysis.llm_client.ModelProcess`. It caps its own address
space (``RLIMIT_AS``) first, loads the model once, answers ``ready`` and then one reply
per request line (see :mod:`noa_core.analysis.llm_protocol`) until stdin closes.
Without ``--model`` only ``info`` requests are answered (``noa doctor``).

Test-only knob: with ``NOA_LLM_TEST_STALL_SECONDS`` set, every generation request first
writes the process id to ``NOA_LLM_TEST_INFLIGHT_FILE`` (when set) and sleeps that long,
so a test can kill the process while a request is really in flight.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from noa_core.analysis.llm_protocol import (
    READY_ID,
    Reply,
    Request,
    decode_request,
    encode,
)

STALL_ENV = "NOA_LLM_TEST_STALL_SECONDS"
INFLIGHT_ENV = "NOA_LLM_TEST_INFLIGHT_FILE"


def _protocol_channel() -> BinaryIO:
    """The original stdout for replies; fd 1 then points at stderr so that nothing
    llama.cpp prints can corrupt the protocol."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return channel


def _limit_memory(memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _test_stall() -> None:
    seconds = float(os.environ.get(STALL_ENV, "0") or 0)
    if seconds <= 0:
        return
    marker = os.environ.get(INFLIGHT_ENV)
    if marker:
        tmp = Path(f"{marker}.{os.getpid()}.tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(marker)
    time.sleep(seconds)


def _info(model: Any) -> dict[str, Any]:
    from noa_core.analysis.llm_model import extra_buffers_wanted, system_info

    info: dict[str, Any] = {"pid": os.getpid(), "python": sys.version.split()[0],
                            "memory_limit_bytes": resource.getrlimit(resource.RLIMIT_AS)[0],
                            "extra_buffers_requested": extra_buffers_wanted(os.environ), **system_info()}
    if model is not None:
        info.update({"model": model.model_path.name, "model_path": str(model.model_path),
                     "load_seconds": round(model.load_seconds, 3), "use_extra_bufts": model.use_extra_bufts})
    return info


def _answer(model: Any, req: Request) -> Reply:
    if req.op == "info":
        return Reply(id=req.id, ok=True, info=_info(model))
    if model is None:
        return Reply(id=req.id, ok=False, error="no model loaded in this process")
    _test_stall()
    t0 = time.perf_counter()
    if req.op == "chat":
        out = model.chat(req.messages, max_tokens=req.max_tokens, temperature=req.temperature, grammar=req.grammar)
    else:
        out = model.complete(req.prompt, max_tokens=req.max_tokens, temperature=req.temperature,
                             grammar=req.grammar)
    return Reply(id=req.id, ok=True, seconds=round(time.perf_counter() - t0, 4), **out)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def serve(model_path: Path | None, n_ctx: int, seed: int, channel: BinaryIO) -> int:
    from noa_core.analysis.llm_model import LocalLlm, extra_buffers_wanted

    model = None
    if model_path is not None:
        try:
            model = LocalLlm(model_path, n_ctx=n_ctx, seed=seed, extra_buffers=extra_buffers_wanted(os.environ))
        except Exception as exc:  # noqa: BLE001 - a broken model file: say so, then exit
            channel.write(encode(Reply(id=READY_ID, ok=False, error=f"model failed: {_one_line(exc)}")))
            return 1
    channel.write(encode(Reply(id=READY_ID, ok=True, info=_info(model))))
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            req = decode_request(line)
        except ValueError as exc:
            channel.write(encode(Reply(id=-1, ok=False, error=f"bad request: {_one_line(exc)}")))
            continue
        try:
            reply = _answer(model, req)
        except Exception as exc:  # noqa: BLE001 - one failed generation (bad grammar...) is not a dead process
            reply = Reply(id=req.id, ok=False, error=_one_line(exc))
        channel.write(encode(reply))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="noa-llm-worker")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-mb", type=int, default=0)
    args = parser.parse_args(argv)
    _limit_memory(args.memory_mb)
    channel = _protocol_channel()
    return serve(args.model, args.n_ctx, args.seed, channel)


if __name__ == "__main__":
    sys.exit(main())
