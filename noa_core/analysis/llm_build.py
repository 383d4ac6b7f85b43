"""Which llama.cpp build is installed, and whether it stays within the portable baseline.

``scripts/bootstrap.sh`` compiles llama-cpp-python into
``$NOA_WHEEL_CACHE`` (default ``${XDG_CACHE_HOME:-~/.cache}/noa-wheels``)``/llama-<key>/``
with a ``BUILD_FLAGS`` file beside the wheel. The installed build is found by content:
the sha256 of the installed native libraries (the distribution's ``RECORD``) against the
``RECORD`` inside each cached wheel, so a wheel built with other flags never matches.

The portable baseline is x86-64-v3 without AVX-512 or AMX and without ``-march=native``
(``GGML_NATIVE``): :func:`baseline_violations` lists what breaks it.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "llama_cpp_python"
WHEEL_CACHE_ENV = "NOA_WHEEL_CACHE"
FORBIDDEN_FEATURE_PREFIXES = ("AVX512", "AMX")


@dataclass(frozen=True)
class BuildFlags:
    flags: str
    path: Path  # the BUILD_FLAGS file
    wheel: Path


def wheel_cache(env: Mapping[str, str] | None = None) -> Path:
    """The folder bootstrap.sh caches its wheels in (same rule as the script)."""
    env = os.environ if env is None else env
    if env.get(WHEEL_CACHE_ENV):
        return Path(env[WHEEL_CACHE_ENV])
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "noa-wheels"


def _native_hashes(rows: list[list[str]]) -> dict[str, str]:
    """path -> 'sha256=...' for the native libraries in a RECORD."""
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[1] and ".so" in Path(row[0]).name}


def installed_native_hashes() -> dict[str, str]:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return {}
    record = dist.read_text("RECORD") or ""
    return _native_hashes(list(csv.reader(io.StringIO(record))))


def _wheel_native_hashes(wheel: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
            if name is None:
                return {}
            record = zf.read(name).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile):
        return {}
    return _native_hashes(list(csv.reader(io.StringIO(record))))


def installed_build_flags(cache: Path | None = None) -> BuildFlags | None:
    """The BUILD_FLAGS of the cached wheel the installed llama-cpp-python came from, if any."""
    installed = installed_native_hashes()
    if not installed:
        return None
    root = cache if cache is not None else wheel_cache()
    if not root.is_dir():
        return None
    for flags_file in sorted(root.glob("llama-*/BUILD_FLAGS")):
        for wheel in sorted(flags_file.parent.glob(f"{DISTRIBUTION}-*.whl")):
            hashes = _wheel_native_hashes(wheel)
            if hashes and all(installed.get(path) == digest for path, digest in hashes.items()):
                return BuildFlags(flags_file.read_text().strip(), flags_file, wheel)
    return None


def baseline_violations(features: Mapping[str, str], build_flags: str | None) -> list[str]:
    """What takes this build outside the portable baseline (empty: within it)."""
    problems = [f"{name} = {value} (compiled in)" for name, value in sorted(features.items())
                if name.upper().startswith(FORBIDDEN_FEATURE_PREFIXES) and value.strip() == "1"]
    if build_flags is not None:
        flags = build_flags.split()
        if "-march=native" in build_flags:
            problems.append("built with -march=native")
        if "-DGGML_NATIVE=ON" in flags or "-DGGML_NATIVE=OFF" not in flags:
            problems.append("built without -DGGML_NATIVE=OFF (native CPU tuning)")
    return problems
