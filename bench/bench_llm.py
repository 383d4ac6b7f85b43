#!/usr/bin/env python
"""The AI step's time per drop: NOA's out-of-process model against a bare in-process
llama-cpp-python call, on the same prompt and the same two questions, in one run.

Per round, in alternating order (so machine load drifts hit both alike):

* ``noa``  - :func:`noa_core.analysis.llm.llm_opinion`: start the model process, load the
  model once, ask the summary and the category question (grammar), stop the process;
* ``bare`` - in this process: ``Llama(model_path=...)`` then the same two
  ``create_chat_completion`` calls with the same parameters (what the AI step did before
  it moved out of process).

Both load the model per drop (the AI step does, once per drop). The median of the
rounds and their ratio are printed (goal: noa <= 1.10 x bare), for wall time (median and
best round) and for CPU time (this process plus the reaped model processes, which a
machine shared with other work disturbs less than wall time); the answers of both paths
are compared (temperature 0, top-k 1, same seed: they should be identical).

Usage: bench/bench_llm.py [--rounds N] [--max-tokens M] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noa_core.analysis import llm
from noa_core.analysis.llm import (
    LlmContext,
    find_model_path,
    llm_opinion,
    llm_unavailable_reason,
)

CTX = LlmContext(project="hello-service", languages={"Python": 4200},
                 readme_excerpt="A small greeting service over HTTP with a health endpoint and a /hello route. "
                                "Run it with `python -m hello_service`; tests with pytest.",
                 file_sample=("README.md", "noa.yaml", "pyproject.toml", "src/hello_service/__init__.py",
                              "src/hello_service/server.py", "tests/test_server.py"), is_update=False)


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the model processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def bare_in_process(model_path: Path, max_tokens: int) -> tuple[float, str, str]:
    from llama_cpp import Llama, LlamaGrammar

    t0 = time.perf_counter()
    model = Llama(model_path=str(model_path), n_ctx=2048, seed=7, verbose=False)
    prompt = llm.build_prompt(CTX)

    def ask(user: str, tokens: int, grammar: Any = None) -> str:
        extra = {"grammar": grammar} if grammar is not None else {}
        out = model.create_chat_completion(
            messages=[{"role": "system", "content": llm._SYSTEM}, {"role": "user", "content": user}],
            max_tokens=tokens, temperature=0.0, top_k=1, **extra)
        return out["choices"][0]["message"]["content"] or ""

    summary = ask(f"{prompt}\n{llm._SUMMARY_ASK}", max_tokens)
    category = ask(f"{prompt}\n{llm._CATEGORY_ASK}", 8,
                   LlamaGrammar.from_string(llm._CATEGORY_GRAMMAR, verbose=False))
    seconds = time.perf_counter() - t0
    model.close()
    return seconds, summary, category


def noa_out_of_process(max_tokens: int) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    result = llm_opinion(CTX, max_tokens=max_tokens)
    seconds = time.perf_counter() - t0
    if result.status != "ok":
        raise SystemExit(f"bench_llm: the out-of-process AI step failed: {result.reason}")
    raw = result.data["raw_answer"]
    summary, _, category = raw.partition("\n[2] ")
    return seconds, summary.removeprefix("[1] "), category


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=80, help="summary tokens (NOA's default: 80)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1 or args.max_tokens < 1:
        sys.stderr.write("noa: error: --rounds and --max-tokens must be at least 1\n")
        return 2
    path = find_model_path()
    reason = llm_unavailable_reason(path)
    if reason or path is None:
        sys.stderr.write(f"noa: error: {reason}\n")
        return 2

    bare_in_process(path, 4)  # warm the page cache and the import for both paths
    noa_out_of_process(4)
    times: dict[str, list[float]] = {"noa": [], "bare": []}
    cpu: dict[str, list[float]] = {"noa": [], "bare": []}
    same = True
    for i in range(args.rounds):
        order = ("noa", "bare") if i % 2 == 0 else ("bare", "noa")
        answers = {}
        for which in order:
            c0 = cpu_seconds()
            seconds, summary, category = (noa_out_of_process(args.max_tokens) if which == "noa"
                                          else bare_in_process(path, args.max_tokens))
            cpu[which].append(cpu_seconds() - c0)
            times[which].append(seconds)
            answers[which] = (summary.strip(), category.strip())
        same = same and answers["noa"] == answers["bare"]
        print(f"round {i + 1}: noa {times['noa'][-1]:.3f} s ({cpu['noa'][-1]:.3f} s CPU), "
              f"bare {times['bare'][-1]:.3f} s ({cpu['bare'][-1]:.3f} s CPU)", file=sys.stderr)

    def stats(values: list[float]) -> dict[str, Any]:
        return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                "all": [round(v, 3) for v in values]}

    out = {"rounds": args.rounds, "max_tokens": args.max_tokens, "model": path.name,
           "wall_s": {"noa": stats(times["noa"]), "bare": stats(times["bare"])},
           "cpu_s": {"noa": stats(cpu["noa"]), "bare": stats(cpu["bare"])},
           "ratio_wall_median": round(statistics.median(times["noa"]) / statistics.median(times["bare"]), 3),
           "ratio_wall_min": round(min(times["noa"]) / min(times["bare"]), 3),
           "ratio_cpu_median": round(statistics.median(cpu["noa"]) / statistics.median(cpu["bare"]), 3),
           "goal_ratio": 1.10, "same_answers": same}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"AI step per drop ({path.name}, summary max {args.max_tokens} tokens + category, "
              f"{args.rounds} rounds)")
        for label, key in (("wall, median", "wall_s"), ("wall, best", "wall_s"), ("CPU, median", "cpu_s")):
            field = "min" if "best" in label else "median"
            ratio = out[f"ratio_{key.split('_')[0]}_{field}"]
            print(f"  {label:<13}: NOA out of process {out[key]['noa'][field]:.3f} s, "
                  f"bare llama-cpp-python {out[key]['bare'][field]:.3f} s, ratio {ratio:.3f} x (goal <= 1.10 x)")
        print(f"  same answers : {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
