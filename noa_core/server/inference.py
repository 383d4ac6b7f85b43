"""Inference: completion and chat over the local llama.cpp model the analysis uses
(:func:`noa_core.analysis.llm.find_model_path`), served by ONE long-lived model process
(:class:`noa_core.analysis.llm_client.ModelProcess`) started on the first request.
Generations never overlap (one llama context); at most ``concurrency`` requests wait
for it at a time. When the model process dies or hangs the request answers 503 with the
reason (``model process died: signal 11``, ``timed out after N s``) and the next request
starts a new process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.analysis.llm import find_model_path, llm_unavailable_reason
from noa_core.analysis.llm_client import ModelProcess, ModelProcessError, WorkerLimits
from noa_core.errors import NoaError


class ModelUnavailable(NoaError):
    """503 ``skipped: model not installed (...)``."""


class ModelBusy(NoaError):
    """503: every generation slot stayed busy for the whole wait."""


class ModelProcessFailed(ModelUnavailable):
    """503 with the reason the model process gave no answer; the next request restarts it."""


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str | None


class Inference:
    def __init__(self, model_path: Path | None = None, *, concurrency: int = 1, queue_timeout: float = 30.0,
                 n_ctx: int = 2048, limits: WorkerLimits | None = None) -> None:
        self.path = find_model_path(model_path)
        self.reason = llm_unavailable_reason(self.path)
        self.concurrency = concurrency
        self.queue_timeout = queue_timeout
        self.n_ctx = n_ctx
        self._sem = asyncio.Semaphore(concurrency)
        self._process = ModelProcess(self.path, limits=limits or WorkerLimits.from_env(), n_ctx=n_ctx)

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def process(self) -> ModelProcess:
        return self._process

    def status(self) -> str:
        return "ok" if self.available else f"skipped: model not installed ({self.reason})"

    def close(self) -> None:
        self._process.close()

    def _gen(self, kind: str, payload: Any, max_tokens: int, temperature: float) -> Generation:
        t0 = time.perf_counter()
        try:
            if kind == "chat":
                reply = self._process.chat(payload, max_tokens=max_tokens, temperature=temperature)
            else:
                reply = self._process.complete(payload, max_tokens=max_tokens, temperature=temperature)
        except ModelProcessError as exc:
            raise ModelProcessFailed(exc.one_line()) from None
        return Generation(reply.text, self.path.name if self.path else "?", reply.prompt_tokens,
                          reply.completion_tokens, round(time.perf_counter() - t0, 3), reply.finish_reason)

    async def generate(self, kind: str, payload: Any, *, max_tokens: int, temperature: float = 0.0) -> Generation:
        if not self.available:
            raise ModelUnavailable(self.status())
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout=self.queue_timeout)
        except TimeoutError:
            raise ModelBusy(f"busy: {self.concurrency} generation(s) running, waited {self.queue_timeout:.0f} s") from None
        try:
            return await asyncio.to_thread(self._gen, kind, payload, max_tokens, temperature)
        finally:
            self._sem.release()
