"""A Go module's dependencies: vendored, or a module cache NOA fills OUTSIDE the sandbox.

* ``vendor/modules.txt`` present: the module's own vendored copies, ``-mod=vendor``;
* no ``require`` in ``go.mod``: nothing to fetch;
* else ``go mod download all`` on the host (``GOPROXY``, ``GOSUMDB``, ``GONOSUMDB``,
  ``GOPRIVATE``, ``GONOPROXY``, ``GOINSECURE``, ``GOVCS`` from the environment; Go's
  defaults otherwise) into NOA's module cache ``<cache>/go/mod``, shared by every
  project; inside the sandbox that cache is read-only, with ``-mod=mod GOPROXY=off``.
  When the proxy cannot be reached (or a module does not exist) the result is ``unknown``
  with go's own message.

``go mod download`` builds and runs nothing of the module. ``GOENV=off``, ``GOWORK=off``,
``GOTOOLCHAIN=local`` and ``GOFLAGS=-mod=mod`` are fixed for the host step, so neither
the user's nor the project's settings choose what runs there.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from noa_core.deps.layout import DepsLayout, DepsResult, run_host_step, tail
from noa_core.toolchains import Toolchain

__all__ = ["PASSED_THROUGH", "prepare_go", "sandbox_go_env"]

PASSED_THROUGH = ("GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOVCS")
_REQUIRE = re.compile(r"^\s*require\b", re.MULTILINE)


def sandbox_go_env(flags: str = "-mod=mod") -> dict[str, str]:
    """Go inside the sandbox: no proxy, no checksum database, no toolchain download."""
    return {"GOPROXY": "off", "GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "GOENV": "off",
            "GOFLAGS": f"{flags} -buildvcs=false"}


def prepare_go(work: Path, go: Toolchain, layout: DepsLayout, *, log: Path, timeout: float = 600.0) -> DepsResult:
    """Make the dependencies of the Go module in ``work`` (a work copy) available offline."""
    t0 = time.perf_counter()
    work = Path(work)
    try:
        gomod = (work / "go.mod").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DepsResult("unknown", "no go.mod in the project")
    if (work / "vendor" / "modules.txt").is_file():
        return DepsResult("ready", env=sandbox_go_env("-mod=vendor"),
                          notes=("vendored modules (vendor/modules.txt), -mod=vendor",),
                          seconds=time.perf_counter() - t0)
    if not _REQUIRE.search(gomod):
        return DepsResult("ready", env=sandbox_go_env(), notes=("go.mod requires no modules: nothing to fetch",),
                          seconds=time.perf_counter() - t0)
    modcache = layout.dir("go", "mod")
    host_env = go.host_env({
        "GOMODCACHE": str(modcache), "GOPATH": str(layout.dir("go", "path")),
        "GOCACHE": str(layout.dir("go", "build-cache")), "HOME": str(layout.dir("go", "user")),
        "GOENV": "off", "GOWORK": "off", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "GOFLAGS": "-mod=mod",
        "CGO_ENABLED": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"})
    for name in PASSED_THROUGH:
        if os.environ.get(name):
            host_env[name] = os.environ[name]
    proxy = host_env.get("GOPROXY", "https://proxy.golang.org,direct (Go's default)")
    rc, out = run_host_step([go.tool("go"), "mod", "download", "all"], cwd=work, env=host_env, log=log,
                            timeout=timeout)
    if rc != 0:
        return DepsResult("unknown", f"the module's dependencies could not be fetched (GOPROXY={proxy}): "
                          f"go mod download exited {rc}: {tail(out)}; vendor them (go mod vendor) to test "
                          "without a proxy", seconds=time.perf_counter() - t0, log=str(log))
    env = {**sandbox_go_env(), "GOMODCACHE": str(modcache)}
    return DepsResult("ready", env=env, readonly_paths=(str(modcache),),
                      notes=(f"modules fetched with go mod download (GOPROXY={proxy}) into NOA's module cache",),
                      seconds=time.perf_counter() - t0, log=str(log))
