"""A llama.cpp model loaded in the current process (used inside the model process only).

llama.cpp's "extra buffer types" (weight repacking for AMX / AVX-512 kernels) stay off
unless ``NOA_LLM_EXTRA_BUFFERS=1``: on some CPUs they crashed batched decode.
``Llama()`` does not expose ``use_extra_bufts``, so the model parameters it starts from
(``llama_cpp.llama_cpp.llama_model_default_params``) are wrapped for the duration of
the load; :attr:`LocalLlm.use_extra_bufts` reads the value back from the parameters the
model was loaded with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXTRA_BUFFERS_ENV = "NOA_LLM_EXTRA_BUFFERS"


def extra_buffers_wanted(env: Mapping[str, str]) -> bool:
    return env.get(EXTRA_BUFFERS_ENV, "").strip() == "1"


@contextmanager
def _default_params_without_extra_buffers() -> Iterator[None]:
    import llama_cpp.llama_cpp as lib

    original: Callable[[], Any] = lib.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


class LocalLlm:
    """A loaded model. Load once, ask many times."""

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 7,
                 extra_buffers: bool = False, verbose: bool = False) -> None:
        from llama_cpp import Llama  # the optional 'ai' extra

        t0 = time.perf_counter()
        self.model_path = model_path
        if extra_buffers:
            self._llama = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, seed=seed,
                                verbose=verbose)
        else:
            with _default_params_without_extra_buffers():
                self._llama = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, seed=seed,
                                    verbose=verbose)
        self.load_seconds = time.perf_counter() - t0
        # What the model was really loaded with (the struct passed to llama_model_load_from_file).
        self.use_extra_bufts = bool(self._llama.model_params.use_extra_bufts)

    def _grammar(self, grammar: str | None) -> dict[str, Any]:
        if grammar is None:
            return {}
        from llama_cpp import LlamaGrammar

        return {"grammar": LlamaGrammar.from_string(grammar, verbose=False)}

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0,
             grammar: str | None = None) -> dict[str, Any]:
        out = self._llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=temperature,
                                                 top_k=1 if temperature == 0 else 40, **self._grammar(grammar))
        return _generation(out, out["choices"][0]["message"]["content"])

    def complete(self, prompt: str, *, max_tokens: int, temperature: float = 0.0,
                 grammar: str | None = None) -> dict[str, Any]:
        out = self._llama.create_completion(prompt=prompt, max_tokens=max_tokens, temperature=temperature,
                                            top_k=1 if temperature == 0 else 40, **self._grammar(grammar))
        return _generation(out, out["choices"][0]["text"])


def _generation(out: Any, text: str | None) -> dict[str, Any]:
    usage = out.get("usage", {})
    return {"text": text or "", "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "finish_reason": out["choices"][0].get("finish_reason")}


def system_info() -> dict[str, Any]:
    """llama.cpp's compiled CPU features, parsed from ``llama_print_system_info``."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return {"llama_cpp_version": getattr(llama_cpp, "__version__", "?"), "system_info": text.strip(),
            "features": parse_system_info(text)}


def parse_system_info(text: str) -> dict[str, str]:
    """``"CPU : SSE3 = 1 | AVX = 1 | ..."`` -> ``{"SSE3": "1", "AVX": "1", ...}``."""
    features: dict[str, str] = {}
    for part in text.replace("\n", "|").split("|"):
        if "=" not in part:
            continue
        key, _, value = part.rpartition("=")
        key = key.split(":")[-1].strip()
        if key:
            features[key] = value.strip()
    return features
