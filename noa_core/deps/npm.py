"""An npm project's dependencies: installed OUTSIDE the sandbox without running any of their
scripts, into the work copy's ``node_modules``; its tests then run inside, offline.

``npm ci --ignore-scripts`` when the project has ``package-lock.json`` /
``npm-shrinkwrap.json``, else ``npm install --ignore-scripts --no-save`` (resolved now; the
notes say so). A ``node_modules`` the drop carries is replaced by this install. No install, lifecycle or
``prepare`` script of the project or of any dependency runs. npm's download cache is NOA's
(``<cache>/npm/cache``), shared by every project.

An install is kept, read-only to every run, in ``<cache>/npm/modules/<key>``, keyed by the
bytes of package.json and the lock file, the node and npm programs and the registry: the
next run of the same project (merge validation, the swarm, the build) gets a copy of it
instead of resolving and downloading again. A copy, not links: what a test writes into
its node_modules stays in its work copy.

The project's own ``.npmrc`` is set aside during the install (it could name a ``git``
program or a ``script-shell`` to run on the host) and put back for the tests; git
dependencies are refused on the host (``git`` is ``/bin/false`` for npm). The registry
is npm's default or ``NOA_NPM_REGISTRY``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from noa_core.deps.layout import DepsLayout, DepsResult, run_host_step, tail
from noa_core.toolchains import Toolchain

__all__ = ["REGISTRY_ENV", "npm_test_argv", "prepare_npm", "sandbox_npm_env"]

REGISTRY_ENV = "NOA_NPM_REGISTRY"
_LOCKS = ("npm-shrinkwrap.json", "package-lock.json")
_DEP_KEYS = ("dependencies", "devDependencies", "optionalDependencies")


_TEST_VERBS = frozenset({"test", "t", "tst"})


def npm_test_argv(argv: list[str]) -> list[str]:
    """``npm test`` as the sandbox runs it: the ``pretest`` hook (lint, a build the tests need)
    and the test script, but not ``posttest``. Post-test hooks are reports about the run
    (``npm audit``, coverage uploads), most of which need the network the sandbox denies; NOA
    audits the dependencies in its own security stage. Any other command is returned as is."""
    if len(argv) != 2 or os.path.basename(argv[0]) != "npm" or argv[1] not in _TEST_VERBS:
        return argv
    npm = argv[0]
    return ["/bin/sh", "-c", 'set -e; "$0" run pretest --if-present; "$0" test --ignore-scripts', npm]


def sandbox_npm_env() -> dict[str, str]:
    """npm inside the sandbox: offline, no update check, no audit, its cache in the private /tmp."""
    return {"npm_config_offline": "true", "npm_config_update_notifier": "false", "npm_config_audit": "false",
            "npm_config_fund": "false", "npm_config_cache": "/tmp/home/.npm", "NO_COLOR": "1",
            "FORCE_COLOR": "0", "CI": "true"}


def _declares_dependencies(work: Path) -> bool | str:
    try:
        doc = json.loads((work / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"cannot read package.json: {exc}"
    if not isinstance(doc, dict):
        return "package.json is not an object"
    return any(isinstance(doc.get(k), dict) and doc.get(k) for k in _DEP_KEYS)


def _modules_key(work: Path, node: Toolchain, lock: str | None, registry: str) -> str:
    h = hashlib.sha256(b"noa-npm-modules-1\0")
    for name in ("package.json", lock):
        h.update(((work / name).read_bytes() if name else b"") + b"\0")
    for tool in ("node", "npm"):
        path = node.tools.get(tool)
        stat = os.stat(path) if path and os.path.exists(path) else None
        h.update(f"{path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}\0".encode())
    h.update(registry.encode())
    return h.hexdigest()[:32]


def _copy_tree(src: Path, dest: Path) -> None:
    """``cp -a`` (much faster than shutil on thousands of small files), shutil where cp is missing."""
    cp = shutil.which("cp")
    if cp and subprocess.run([cp, "-a", str(src), str(dest)], check=False, capture_output=True).returncode == 0:
        return
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)


def _keep_modules(work: Path, stored: Path) -> None:
    """Store ``work/node_modules`` as ``stored`` (atomically; a concurrent twin may win)."""
    if stored.is_dir() or not (work / "node_modules").is_dir():
        return
    tmp = stored.with_name(f"{stored.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(work / "node_modules", tmp)
        os.rename(tmp, stored)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_npm(work: Path, node: Toolchain, layout: DepsLayout, *, log: Path, timeout: float = 600.0) -> DepsResult:
    """Install the dependencies of the npm project in ``work`` (a work copy) into its node_modules."""
    t0 = time.perf_counter()
    work = Path(work)
    env_in = sandbox_npm_env()
    if not (work / "package.json").is_file():
        return DepsResult("unknown", "no package.json in the project")
    declares = _declares_dependencies(work)
    if isinstance(declares, str):
        return DepsResult("unknown", declares)
    if not declares:
        return DepsResult("ready", env=env_in, notes=("package.json declares no dependencies: nothing to install",),
                          seconds=time.perf_counter() - t0)
    if "npm" not in node.tools:
        return DepsResult("unknown", "npm is not installed: the project's dependencies cannot be installed")
    notes: list[str] = []
    if (work / "node_modules").is_symlink() or (work / "node_modules").is_file():
        (work / "node_modules").unlink()
    if (work / "node_modules").is_dir():
        shutil.rmtree(work / "node_modules")
        notes.append("the drop's own node_modules was replaced by NOA's install")
    lock = next((name for name in _LOCKS if (work / name).is_file()), None)
    cache = layout.dir("npm", "cache")
    # the operator's npm configuration (~/.npmrc, /etc/npmrc: registry mirror, cafile) applies;
    # the project's does not (set aside below)
    host_env = node.host_env({
        "npm_config_cache": str(cache), "npm_config_fetch_retries": "1",
        "npm_config_fetch_retry_mintimeout": "2000", "npm_config_fetch_retry_maxtimeout": "10000",
        "npm_config_ignore_scripts": "true", "npm_config_git": "/bin/false", "npm_config_update_notifier": "false",
        "npm_config_audit": "false", "npm_config_fund": "false", "npm_config_progress": "false",
        "npm_config_loglevel": "warn", "NO_COLOR": "1"})
    registry = os.environ.get(REGISTRY_ENV, "").strip()
    if registry:
        host_env["npm_config_registry"] = registry
    verb = ["ci"] if lock else ["install", "--no-save"]
    stored = layout.dir("npm", "modules") / _modules_key(work, node, lock, registry)
    if stored.is_dir():
        _copy_tree(stored, work / "node_modules")
        installed = sum(1 for p in stored.glob("*") if not p.name.startswith("."))
        notes.insert(0, f"npm {verb[0]} --ignore-scripts: {installed} top-level package(s) in node_modules, "
                     f"reused from an earlier install of the same package.json" + ("" if lock else
                     " (no lock file in the project: resolved by npm install)"))
        return DepsResult("ready", env=env_in, notes=tuple(notes), seconds=time.perf_counter() - t0)
    argv = [node.tool("npm"), *verb, "--ignore-scripts", "--no-audit", "--no-fund", "--include=dev",
            "--include=optional"]
    held = work / ".npmrc"
    aside = work / f".npmrc.noa-held-{os.getpid()}"
    if held.is_file() or held.is_symlink():
        os.replace(held, aside)
        notes.append("the project's .npmrc was not used for the install (it is used for the tests)")
    try:
        rc, out = run_host_step(argv, cwd=work, env=host_env, log=log, timeout=timeout)
    finally:
        if aside.exists() or aside.is_symlink():
            os.replace(aside, held)
    if rc != 0:
        return DepsResult("unknown", f"the project's npm dependencies could not be installed: npm {verb[0]} "
                          f"exited {rc}: {tail(out)}", seconds=time.perf_counter() - t0, log=str(log))
    installed = sum(1 for p in (work / "node_modules").glob("*") if not p.name.startswith(".")) \
        if (work / "node_modules").is_dir() else 0
    _keep_modules(work, stored)
    notes.insert(0, f"npm {verb[0]} --ignore-scripts: {installed} top-level package(s) in node_modules"
                 + ("" if lock else " (no lock file in the project: resolved by npm install)"))
    return DepsResult("ready", env=env_in, notes=tuple(notes), seconds=time.perf_counter() - t0, log=str(log))
