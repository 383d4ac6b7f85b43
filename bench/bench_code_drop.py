#!/usr/bin/env python
"""Time `noa drop pypi:NAME==VERSION` against the plain tools doing the same work.

Plain baseline, run sequentially in the same process tree and on the same machine:
  pip download (fetch) -> tar extract -> git init/add/commit (land) -> pytest ->
  bandit -> detect-secrets --all-files -> radon cc + radon mi -> pip-audit.
NOA: `noa drop` as a user runs it (CLI subprocess, --no-ai), against an already
running embedded Prefect server (its one-time start is reported apart), first with a
cold analysis cache and then again with the same content (warm cache). The local LLM
step is timed apart by a third run with the AI on.

Prints a table and the ratio NOA / plain (goal: <= 1.15, LLM excluded).
Usage: bench/bench_code_drop.py [NAME==VERSION ...]   (default: toolz==1.2.0 click==8.5.1)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))

from noa_core.orchestration.prefect_server import EmbeddedPrefectServer  # noqa: E402


def timed(label: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None,
          ok_codes: tuple[int, ...] = (0,)) -> tuple[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in ok_codes:
        raise SystemExit(f"{label} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return proc.stdout, seconds


def plain_tools(spec: str, work: Path) -> dict[str, float]:
    name, version = spec.split("==")
    steps: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)
    dl = work / "dl"
    _, steps["fetch (pip download)"] = timed("pip download", [PY, "-m", "pip", "download", "-q", "--no-deps",
                                                               "--no-binary", ":all:", spec, "-d", str(dl)], work)
    t0 = time.perf_counter()
    (archive,) = list(dl.iterdir())
    with tarfile.open(archive) as tf:
        tf.extractall(work / "src", filter="data")
    (tree,) = list((work / "src").iterdir())
    steps["extract (tarfile)"] = time.perf_counter() - t0
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@b"}
    repo = work / "repo"
    shutil.copytree(tree, repo)
    t0 = time.perf_counter()
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "drop"]):
        timed("git", argv, repo, git_env)
    steps["land (git init/add/commit)"] = time.perf_counter() - t0
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if (tree / "src").is_dir():
        env["PYTHONPATH"] = str(tree / "src")
    _, steps["tests (pytest)"] = timed("pytest", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tree, env,
                                       ok_codes=(0, 1))
    _, steps["sast (bandit -r)"] = timed("bandit", [PY, "-m", "bandit", "-r", "-q", "-f", "json", "."], tree,
                                         ok_codes=(0, 1))
    _, steps["secrets (detect-secrets)"] = timed("detect-secrets", [PY, "-m", "detect_secrets", "scan",
                                                                    "--all-files", "."], tree)
    _, cc = timed("radon cc", [PY, "-m", "radon", "cc", "-j", "."], tree)
    _, mi = timed("radon mi", [PY, "-m", "radon", "mi", "-j", "."], tree)  # NOA reports both
    steps["complexity (radon cc + mi)"] = cc + mi
    reqs = work / "reqs.txt"
    reqs.write_text("")  # toolz/click/cachetools declare no pinned runtime deps worth auditing offline
    _, steps["vulns (pip-audit)"] = timed("pip-audit", [PY, "-m", "pip_audit", "-r", str(reqs), "--disable-pip",
                                                        "--no-deps", "-f", "json"], work, ok_codes=(0, 1))
    return steps


def noa_drop(spec: str, home: Path, api_url: str, ai: bool) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=api_url, PREFECT_LOGGING_LEVEL="WARNING", NOA_HOME=str(home))
    argv = [PY, "-m", "noa_core.cli", "drop", f"pypi:{spec}", "--json"] + ([] if ai else ["--no-ai"])
    out, seconds = timed("noa drop", argv, home.parent, env, ok_codes=(0, 1))
    return seconds, json.loads(out)


def main(specs: list[str]) -> int:
    base = Path(tempfile.mkdtemp(prefix="noa-bench-"))
    home = base / "home"
    t0 = time.perf_counter()
    server = EmbeddedPrefectServer(home / "prefect", 4300)
    info = server.ensure()
    print(f"embedded Prefect server start (one-time, not in the ratios): {time.perf_counter() - t0:.1f} s")
    ratios = []
    try:
        for spec in specs:
            plain = plain_tools(spec, base / f"plain-{spec}")
            plain_total = sum(plain.values())
            cold, report = noa_drop(spec, home, info.api_url, ai=False)
            warm, _ = noa_drop(spec, home, info.api_url, ai=False)
            with_ai, ai_report = noa_drop(spec, home, info.api_url, ai=True)
            print(f"\n== {spec}: {report['files']} files, tests {report['tests']['summary_line']!r}")
            print(f"{'plain step':32} {'seconds':>8}")
            for k, v in plain.items():
                print(f"{k:32} {v:8.2f}")
            print(f"{'plain total':32} {plain_total:8.2f}")
            print(f"{'noa drop (cold cache, no AI)':32} {cold:8.2f}   ratio {cold / plain_total:.2f}x")
            print(f"{'noa drop (warm cache, no AI)':32} {warm:8.2f}   ratio {warm / plain_total:.2f}x")
            print(f"{'noa drop (AI on)':32} {with_ai:8.2f}   LLM step {ai_report['timings'].get('ai', 0):.2f} s "
                  f"({ai_report['ai'].get('opinion')})")
            print("noa step timings (cold):", json.dumps(report["timings"]))
            ratios.append(cold / plain_total)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nNOA / plain tools (cold, LLM excluded): " + ", ".join(f"{r:.2f}x" for r in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["toolz==1.2.0", "click==8.5.1"]))
