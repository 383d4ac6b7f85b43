"""Python: an sdist and a wheel by the project's PEP 517 backend, isolated and offline.

The build requirements (``[build-system] requires``) come from NOA's own environment when
it satisfies them; otherwise they are installed once, as wheels only (no code of theirs
runs on the host), into a build environment cached by requirement set under
``cache_dir`` - like ``python -m build``'s isolated environment, but prepared outside the
sandbox, which has no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

from noa_core.build.interface import BuildStep
from noa_core.config import ExecLimits
from noa_core.isolation import run_isolated

__all__ = ["build_requirements", "is_python_project", "missing_requirements", "pep517_build", "prepare_build_env"]

SHIM = Path(__file__).with_name("_pep517.py")
DIST = ".noa-dist"
DEFAULT_REQUIRES = ["setuptools>=40.8.0"]


def is_python_project(tree: Path) -> bool:
    return (tree / "pyproject.toml").is_file() or (tree / "setup.py").is_file()


def build_requirements(tree: Path) -> list[str]:
    path = tree / "pyproject.toml"
    if not path.is_file() or path.is_symlink():
        return list(DEFAULT_REQUIRES)
    try:
        cfg = tomllib.loads(path.read_text(errors="replace")).get("build-system") or {}
    except tomllib.TOMLDecodeError:
        return list(DEFAULT_REQUIRES)
    reqs = cfg.get("requires")
    return [str(r) for r in reqs] if isinstance(reqs, list) and reqs else list(DEFAULT_REQUIRES)


def missing_requirements(reqs: list[str]) -> list[str]:
    """The requirements NOA's own environment does not satisfy."""
    sys.path.insert(0, str(SHIM.parent))
    try:
        from _pep517 import missing_requirements as check  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SHIM.parent))
    return check(reqs)


def prepare_build_env(reqs: list[str], cache_dir: Path, *, timeout_s: float = 300.0) -> tuple[Path | None, str]:
    """A directory with ``reqs`` installed (wheels only), cached by the requirement set."""
    import hashlib

    key = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:16]
    env_dir = cache_dir / key
    if (env_dir / ".complete").is_file():
        return env_dir, "cached"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--only-binary=:all:", "--no-compile", "--target", str(tmp), *reqs]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, f"installing the build requirements timed out after {timeout_s:.0f} s"
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [""]
        return None, f"could not install the build requirements ({', '.join(reqs)}): {tail[0][:200]}"
    (tmp / ".complete").write_text("\n".join(reqs))
    try:
        os.replace(tmp, env_dir)
    except OSError:  # another build made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return env_dir, "prepared"


def pep517_build(work: Path, limits: ExecLimits, log_dir: Path, *, cache_dir: Path,
                 hide_paths: tuple[str, ...] = ()) -> tuple[BuildStep, list[tuple[str, Path]]]:
    """Build in ``work`` (a work copy); returns the step and ``[(kind, file)]`` built."""
    out = work / DIST
    result = work / ".noa-pep517.json"
    log = log_dir / "pep517.log"
    command = ("python", "-m", "pep517-build", "--sdist", "--wheel")
    reqs = build_requirements(work)
    argv = [sys.executable, "-I", str(SHIM), str(out), str(result)]
    readonly: list[str] = []
    note = "NOA's environment"
    if missing_requirements(reqs):
        env_dir, how = prepare_build_env(reqs, cache_dir)
        if env_dir is None:
            return BuildStep("pep517", "failed", how, command), []
        argv.append(str(env_dir))
        readonly.append(str(env_dir))
        note = f"build environment {env_dir.name} ({how})"
    res = run_isolated(argv, work, limits, env={"SOURCE_DATE_EPOCH": "315532800"}, readonly_paths=readonly,
                       hide_paths=hide_paths, stdout_path=log, merge_stderr=True)
    try:
        doc = json.loads(result.read_text())
    except (OSError, ValueError):
        doc = {}
    if res.timed_out:
        return BuildStep("pep517", "failed", "the build timed out", command, res.seconds, str(log),
                         res.isolation), []
    if res.returncode != 0 or "error" in doc:
        why = doc.get("error") or f"the build backend exited {res.returncode}"
        if doc.get("missing"):
            why += ": " + ", ".join(doc["missing"])
        else:
            tail = [ln for ln in res.stdout.strip().splitlines() if ln.strip()][-2:]
            why += (": " + " | ".join(t[:200] for t in tail)) if tail else ""
        return BuildStep("pep517", "failed", why, command, res.seconds, str(log), res.isolation), []
    built = [(kind, out / doc[kind]) for kind in ("sdist", "wheel") if doc.get(kind) and (out / doc[kind]).is_file()]
    return BuildStep("pep517", "ok", f"{doc.get('backend')} in {note}: " + ", ".join(p.name for _, p in built),
                     command, res.seconds, str(log), res.isolation), built


def uv_build(work: Path, limits: ExecLimits, log_dir: Path, *, python: Path, uv: Path, wheelhouse: Path,
             readonly: tuple[str, ...] = (), hide_paths: tuple[str, ...] = ()) -> tuple[BuildStep, list[tuple[str, Path]]]:
    """sdist + wheel with ``uv build`` in the project's own environment (``python``), offline: the
    build requirements come from the project's wheelhouse, never from NOA's packages."""
    out = work / DIST
    log = log_dir / "uv-build.log"
    command = ("uv", "build", "--sdist", "--wheel")
    argv = [str(uv), "build", "--sdist", "--wheel", "--out-dir", str(out), "--python", str(python), "--no-index",
            "--find-links", str(wheelhouse), "--offline", "--quiet", str(work)]
    from noa_core.pyenv.envs import uv_sandbox_env

    env = {**uv_sandbox_env(), "SOURCE_DATE_EPOCH": "315532800"}
    res = run_isolated(argv, work, limits, env=env, readonly_paths=[str(wheelhouse), str(uv.parent), *readonly],
                       hide_paths=hide_paths, stdout_path=log, merge_stderr=True)
    if res.timed_out:
        return BuildStep("uv-build", "failed", "the build timed out", command, res.seconds, str(log),
                         res.isolation), []
    built = sorted([("sdist", p) for p in out.glob("*.tar.gz")] + [("wheel", p) for p in out.glob("*.whl")])
    if res.returncode != 0 or not built:
        try:
            tail = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-3:]
        except OSError:
            tail = []
        why = f"uv build exited {res.returncode}" + ((": " + " | ".join(t[:200] for t in tail)) if tail else "")
        return BuildStep("uv-build", "failed", why, command, res.seconds, str(log), res.isolation), []
    return BuildStep("uv-build", "ok", "in the project's environment: " + ", ".join(p.name for _, p in built),
                     command, res.seconds, str(log), res.isolation), built
