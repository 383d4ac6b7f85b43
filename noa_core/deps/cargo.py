"""A crate's dependencies: vendored OUTSIDE the sandbox, used inside with ``--offline --frozen``.

``cargo vendor`` (which, like ``cargo fetch``, executes no build script) runs on the host with
NOA's own ``CARGO_HOME`` (``<cache>/cargo/home``: downloads are shared by every project)
and writes the crate sources into ``<cache>/cargo/vendor/<key>/vendor``, keyed by the
``Cargo.lock`` and the source it was fetched from, beside a ``config.toml`` that replaces
every source with that directory. Inside the sandbox cargo gets ``--config <that file>``,
a private writable ``CARGO_HOME`` in its ``/tmp`` and the vendor directory read-only: a
directory source needs no unpacking and no lock in it, so nothing there must be writable.

A crate without ``Cargo.lock`` gets one first (``cargo generate-lockfile``, written into
the work copy and named in the notes). The host step runs from a NOA directory, never
from the project's (``--manifest-path``): cargo reads ``.cargo/config.toml`` and rustup
reads ``rust-toolchain.toml`` from the current directory, so the project's own
configuration (credential providers, alternative registries, toolchain downloads) is
never used outside the sandbox.

Where crates come from (``NOA_CARGO_SOURCE``):

* ``auto`` (default): Debian's crate registry ``/usr/share/cargo/registry`` (the
  ``librust-*-dev`` packages) when it exists, then crates.io;
* ``debian``, ``crates-io``, or a directory in the layout of a cargo directory source.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noa_core.deps.layout import DepsLayout, DepsResult, run_host_step, tail
from noa_core.toolchains import SANDBOX_CARGO_HOME, Toolchain

__all__ = ["DEBIAN_REGISTRY", "SOURCE_ENV", "CargoSource", "cargo_sources", "prepare_cargo"]

DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
SOURCE_ENV = "NOA_CARGO_SOURCE"
_VENDORED = "noa-vendored"


@dataclass(frozen=True)
class CargoSource:
    """Where the host step takes crates from: a name for the reports and cargo's ``--config`` args."""

    name: str
    args: tuple[str, ...] = ()


def _directory_source(name: str, path: Path) -> CargoSource:
    return CargoSource(name, ("--config", 'source.crates-io.replace-with="noa-upstream"',
                              "--config", f"source.noa-upstream.directory={json.dumps(str(path))}"))


def cargo_sources() -> list[CargoSource]:
    """The sources to try, in order (see the module docstring)."""
    choice = os.environ.get(SOURCE_ENV, "").strip() or "auto"
    if choice == "crates-io":
        return [CargoSource("crates.io")]
    if choice == "debian":
        return [_directory_source(f"Debian's crate registry {DEBIAN_REGISTRY}", DEBIAN_REGISTRY)]
    if choice != "auto":
        return [_directory_source(f"the crate directory {choice}", Path(choice).resolve())]
    out = []
    if DEBIAN_REGISTRY.is_dir():
        out.append(_directory_source(f"Debian's crate registry {DEBIAN_REGISTRY}", DEBIAN_REGISTRY))
    out.append(CargoSource("crates.io"))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def _config_toml(printed: str, vendor_dir: Path) -> str:
    """cargo vendor's printed configuration, its directory made absolute (``vendor_dir``)."""
    doc = tomllib.loads(printed) if printed.strip() else {}
    sources: dict[str, dict[str, Any]] = dict(doc.get("source", {}))
    vendored = next((k for k, v in sources.items() if isinstance(v, dict) and "directory" in v), None)
    if vendored is None:
        sources = {"crates-io": {"replace-with": _VENDORED}}
        vendored = _VENDORED
    sources[vendored] = {"directory": str(vendor_dir)}
    lines = []
    for name, table in sources.items():
        lines.append(f"[source.{json.dumps(name)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _key(source: CargoSource, lock: bytes) -> str:
    h = hashlib.sha256()
    h.update(source.name.encode() + b"\0" + "\0".join(source.args).encode() + b"\0")
    h.update(lock)
    return h.hexdigest()[:24]


def prepare_cargo(work: Path, rust: Toolchain, layout: DepsLayout, *, log: Path, timeout: float = 600.0
                  ) -> DepsResult:
    """Vendor (or reuse) the dependencies of the crate in ``work`` (a work copy: a missing
    ``Cargo.lock`` is written into it)."""
    t0 = time.perf_counter()
    work = Path(work)
    manifest = work / "Cargo.toml"
    if not manifest.is_file():
        return DepsResult("unknown", f"no Cargo.toml in {work.name}")
    lock = work / "Cargo.lock"
    had_lock = lock.is_file()
    cargo = rust.tool("cargo")
    env = rust.host_env({"CARGO_HOME": str(layout.dir("cargo", "home")), "HOME": str(layout.dir("cargo", "user")),
                         "CARGO_TERM_COLOR": "never", "CARGO_NET_RETRY": "1", "CARGO_HTTP_TIMEOUT": "30",
                         "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"})
    cwd = layout.dir("cargo", "cwd")  # never the project's: its .cargo/config.toml stays unread here
    failures: list[str] = []
    for source in cargo_sources():
        notes: list[str] = []
        if not had_lock:
            lock.unlink(missing_ok=True)
            rc, out = run_host_step([cargo, *source.args, "generate-lockfile", "--manifest-path", str(manifest)],
                                    cwd=cwd, env=env, log=log, timeout=timeout)
            if rc != 0:
                failures.append(f"{source.name}: cargo generate-lockfile exited {rc}: {tail(out)}")
                continue
            notes.append(f"Cargo.lock generated by NOA (cargo generate-lockfile, from {source.name}): "
                         "the crate has none")
        key = _key(source, lock.read_bytes())
        vendor_root = layout.dir("cargo", "vendor")
        dest = vendor_root / key
        config = dest / "config.toml"
        if config.is_file():
            notes.append(f"dependencies reused from {dest.name} (vendored from {source.name})")
        else:
            tmp = vendor_root / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            printed = tmp / "printed.toml"
            rc, out = run_host_step([cargo, *source.args, "vendor", "--respect-source-config", "--locked",
                                     "--manifest-path", str(manifest), str(tmp / "vendor")],
                                    cwd=cwd, env=env, log=log, timeout=timeout, stdout_path=printed)
            if rc != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                failures.append(f"{source.name}: cargo vendor exited {rc}: {tail(out)}")
                continue
            try:
                text = _config_toml(printed.read_text(encoding="utf-8"), dest / "vendor")
            except (OSError, tomllib.TOMLDecodeError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                failures.append(f"{source.name}: cannot read cargo vendor's configuration: {exc}")
                continue
            (tmp / "vendor").mkdir(exist_ok=True)  # a crate without dependencies vendors nothing
            (tmp / "config.toml").write_text(text, encoding="utf-8")
            printed.unlink(missing_ok=True)
            try:
                os.rename(tmp, dest)
            except OSError:  # another run vendored the same set first
                shutil.rmtree(tmp, ignore_errors=True)
            vendored = sum(1 for p in (dest / "vendor").iterdir() if p.is_dir())
            notes.append(f"{vendored} crate(s) vendored from {source.name} into {dest.name}")
        env_in = {"CARGO_HOME": SANDBOX_CARGO_HOME, "CARGO_NET_OFFLINE": "true", "CARGO_TERM_COLOR": "never"}
        return DepsResult("ready", env=env_in, readonly_paths=(str(dest),), args=("--config", str(config)),
                          notes=tuple(notes), seconds=time.perf_counter() - t0, log=str(log))
    return DepsResult("unknown", "the crate's dependencies could not be fetched: " + "; ".join(failures),
                      seconds=time.perf_counter() - t0, log=str(log))
