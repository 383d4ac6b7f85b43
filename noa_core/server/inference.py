"""Inference: completion and chat over the local llama.cpp model the analysis uses
(:func:`noa_core.analysis.llm.find_model_path`), loaded once, at most ``concurrency``
generations at a time (llama.cpp contexts are not re-entrant), each in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.analysis.llm import find_model_path, llm_unavailable_reason
from noa_core.errors import NoaError


class ModelUnavailable(NoaError):
    """503 ``skipped: model not installed (...)``."""


class ModelBusy(NoaError):
    """503: every generation slot stayed busy for the whole wait."""


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
                 n_ctx: int = 2048) -> None:
        self.path = find_model_path(model_path)
        self.reason = llm_unavailable_reason(self.path)
        self.concurrency = concurrency
        self.queue_timeout = queue_timeout
        self.n_ctx = n_ctx
        self._sem = asyncio.Semaphore(concurrency)
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one llama context: generations never overlap inside it

    @property
    def available(self) -> bool:
        return self.reason is None

    def status(self) -> str:
        return "ok" if self.available else f"skipped: model not installed ({self.reason})"

    def _model(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                from llama_cpp import Llama

                self._llama = Llama(model_path=str(self.path), n_ctx=self.n_ctx, seed=7, verbose=False)
            return self._llama

    def _gen(self, kind: str, payload: Any, max_tokens: int, temperature: float) -> Generation:
        t0 = time.perf_counter()
        llama = self._model()
        with self._run_lock:
            if kind == "chat":
                out = llama.create_chat_completion(messages=payload, max_tokens=max_tokens, temperature=temperature,
                                                   top_k=1 if temperature == 0 else 40)
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = llama.create_completion(prompt=payload, max_tokens=max_tokens, temperature=temperature,
                                              top_k=1 if temperature == 0 else 40)
                text = out["choices"][0]["text"] or ""
        usage = out.get("usage", {})
        return Generation(text, self.path.name if self.path else "?", int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), round(time.perf_counter() - t0, 3),
                          out["choices"][0].get("finish_reason"))

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
