"""The dropped project itself, built and installed beside its environment.

A plain venv set up by hand gets ``pip install ./project``: the project's metadata and
entry points exist, so code that asks ``importlib.metadata.version("project")`` works.
Here the project is built from a copy of its tree inside the sandbox (no network; its
build requirements come from the wheelhouse) and installed with ``--target`` into a
*site* directory keyed by (tree content, environment), so the shared environment is never
modified. Test runs put the site directory on ``PYTHONPATH``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from noa_core.config import ExecLimits
from noa_core.errors import NoaError
from noa_core.isolation import make_work_copy, run_isolated
from noa_core.pyenv.envs import PythonEnv, _mark_used, _tail, uv_sandbox_env

DONE = ".noa-site-complete"


class ProjectBuildError(NoaError):
    """The project could not be built or installed; the message is the build's last lines."""


@dataclass(frozen=True)
class ProjectSite:
    path: Path
    seconds: float
    reused: bool


def ensure_project_site(tree: Path, tree_hash: str, env: PythonEnv, *, uv: Path, wheelhouse: Path,
                        sites_dir: Path, limits: ExecLimits, hide_paths: tuple[str, ...] = ()) -> ProjectSite:
    """The project's site directory for ``env`` (reused when built before); raises ProjectBuildError."""
    final = sites_dir / f"{tree_hash[:24]}-{env.key[:12]}"
    if (final / DONE).is_file():
        _mark_used(final)
        return ProjectSite(final, 0.0, True)
    sites_dir.mkdir(parents=True, exist_ok=True)
    build = sites_dir / f".build-{uuid.uuid4().hex[:10]}"
    build.mkdir()
    log = sites_dir / f".build-{final.name}.log"
    t0 = time.perf_counter()
    try:
        src = make_work_copy(tree, build)
        site = build / "site"
        argv = [str(uv), "pip", "install", "--python", str(env.python), "--no-index", "--find-links",
                str(wheelhouse), "--no-deps", "--target", str(site), "--quiet", str(src)]
        env_vars = uv_sandbox_env()
        env_vars["SOURCE_DATE_EPOCH"] = "315532800"
        res = run_isolated(argv, build, limits, env=env_vars, hide_paths=hide_paths,
                           readonly_paths=[str(wheelhouse), str(uv.parent), str(env.path)],
                           stdout_path=log, merge_stderr=True)
        if res.timed_out:
            raise ProjectBuildError(f"building the project timed out after {limits.wall_seconds:.0f} s")
        if res.returncode != 0:
            raise ProjectBuildError(f"building the project failed (exit {res.returncode}): {_tail(log)}")
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this build's paths
        (site / DONE).write_text(tree_hash)
        try:
            site.rename(final)
        except OSError:
            if not (final / DONE).is_file():
                raise
        return ProjectSite(final, time.perf_counter() - t0, False)
    finally:
        shutil.rmtree(build, ignore_errors=True)
