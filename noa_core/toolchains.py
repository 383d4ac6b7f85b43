"""Where the native toolchains are (cargo/rustc, go, node/npm) and what a sandboxed run of
each needs: the read-only paths to expose and the environment (PATH first).

One place, used by drop and merge validation (:func:`noa_core.validation.runner.run_test_suite`),
the Rust and Go swarms, and the dependency fetchers (:mod:`noa_core.deps`). The sandbox
hides home directories, so a rustup installation (``~/.cargo/bin`` + ``~/.rustup``) is
invisible to dropped code unless exactly those two places are exposed read-only; this
module says which.

Lookup order for each tool: an explicit ``NOA_<TOOL>`` variable (``NOA_CARGO``, ``NOA_GO``,
``NOA_NODE``, ``NOA_NPM``), then ``PATH``, then the usual install places (``$CARGO_HOME/bin``,
rustup's ``.cargo/bin`` of the current user and of root, ``/usr/lib/go/bin``,
``/usr/local/go/bin``). Nothing is found by a checkout path or the current directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "Toolchain",
    "ToolchainName",
    "find_go",
    "find_node",
    "find_rust",
    "find_tool",
    "for_command",
    "go_toolchain",
    "host_version",
    "rust_toolchain",
    "toolchain_of",
]

ToolchainName = Literal["rust", "go", "node"]

#: the sandbox's own writable CARGO_HOME (in its private /tmp)
SANDBOX_CARGO_HOME = "/tmp/home/.cargo"
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: prefixes that are always visible in the sandbox: nothing to expose for a tool there
_SYSTEM_PREFIXES = ("/usr", "/usr/local", "/bin", "/opt")
#: the command names that belong to each toolchain
_COMMANDS: dict[str, ToolchainName] = {
    "cargo": "rust", "rustc": "rust", "rustup": "rust", "cargo-clippy": "rust",
    "go": "go", "gofmt": "go",
    "node": "node", "nodejs": "node", "npm": "node", "npx": "node",
}


@dataclass(frozen=True)
class Toolchain:
    """A toolchain found on this host and how a sandboxed run reaches it."""

    name: ToolchainName
    tools: Mapping[str, str]  # command name -> absolute host path (e.g. cargo, rustc)
    readonly_paths: tuple[str, ...] = ()  # to expose read-only inside the sandbox
    path_dirs: tuple[str, ...] = ()  # put first on PATH, in and out of the sandbox
    env: Mapping[str, str] = field(default_factory=dict)  # RUSTUP_HOME, ... (same in and out)

    def tool(self, name: str) -> str:
        """Absolute path of one of its commands (``cargo``, ``npm``, ...)."""
        try:
            return self.tools[name]
        except KeyError:
            raise KeyError(f"{self.name} toolchain has no {name!r}") from None

    @property
    def path(self) -> str:
        return ":".join(dict.fromkeys([*self.path_dirs, *_SYSTEM_PATH.split(":")]))

    def sandbox_env(self) -> dict[str, str]:
        """What a sandboxed run of this toolchain needs in its environment (PATH and the rest)."""
        return {"PATH": self.path, **self.env}

    def host_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A minimal environment for running this toolchain on the host (NOA's own steps:
        versions, dependency downloads). The caller's environment is not inherited except
        ``LANG``, the proxy settings and the CA bundles, so a user's configuration never leaks in."""
        keep = ("LANG", "LC_ALL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
                "CURL_CA_BUNDLE", "CARGO_HTTP_CAINFO")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(self.sandbox_env())
        env.update(extra or {})
        return env


def host_version(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """First line of ``<tool> --version`` run on the host (NOA's own tool, not dropped code)."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
                              env=dict(env) if env is not None else None)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None


def _executable(path: str | os.PathLike[str] | None) -> str | None:
    if not path:
        return None
    try:
        p = Path(path)
        if p.is_file() and os.access(p, os.X_OK):
            return str(p.absolute())
    except OSError:
        return None
    return None


def find_tool(name: str, candidates: Sequence[str | os.PathLike[str]] = ()) -> str | None:
    """``$NOA_<NAME>``, else ``name`` on PATH, else the first executable of ``candidates``."""
    override = os.environ.get(f"NOA_{name.upper().replace('-', '_')}", "").strip()
    if override:
        return _executable(override)
    found = shutil.which(name)
    if found:
        return str(Path(found).absolute())
    for c in candidates:
        hit = _executable(c)
        if hit:
            return hit
    return None


def _exposed(paths: Sequence[str]) -> tuple[str, ...]:
    """The paths a sandbox must be given: those outside the always-visible system prefixes."""
    out = []
    for p in paths:
        rp = os.path.realpath(p)
        if not os.path.exists(rp):
            continue
        if any(rp == s or rp.startswith(s + "/") for s in _SYSTEM_PREFIXES):
            continue
        out.append(rp)
    return tuple(dict.fromkeys(out))


def _rustup_home(cargo: str) -> str | None:
    """rustup's home when ``cargo`` is rustup's proxy, else None (Debian's plain cargo)."""
    cargo_p = Path(cargo)
    is_proxy = os.path.basename(os.path.realpath(cargo_p)).startswith("rustup") or (
        cargo_p.parent.name == "bin" and cargo_p.parent.parent.name == ".cargo")  # rustup may hard-link
    if not is_proxy:
        return None
    home = os.environ.get("RUSTUP_HOME") or str(cargo_p.parent.parent.parent / ".rustup")
    return home if Path(home).is_dir() else None


def rust_toolchain(cargo: str) -> Toolchain:
    """The Rust toolchain of one cargo executable (rustup's proxy or a plain cargo)."""
    bindir = os.path.dirname(cargo)
    tools = {"cargo": cargo}
    rustc = _executable(os.path.join(bindir, "rustc")) or shutil.which("rustc")
    if rustc:
        tools["rustc"] = rustc
    env: dict[str, str] = {}
    readonly = [bindir]
    rustup_home = _rustup_home(cargo)
    if rustup_home:
        env["RUSTUP_HOME"] = rustup_home
        readonly.append(rustup_home)
        toolchain = os.environ.get("RUSTUP_TOOLCHAIN", "").strip()
        if toolchain:
            env["RUSTUP_TOOLCHAIN"] = toolchain
    return Toolchain("rust", tools, readonly_paths=_exposed(readonly), path_dirs=(bindir,), env=env)


def find_rust() -> Toolchain | None:
    """cargo (and rustc beside it): rustup's or the system's."""
    candidates: list[str | os.PathLike[str]] = []
    if os.environ.get("CARGO_HOME"):
        candidates.append(Path(os.environ["CARGO_HOME"]) / "bin" / "cargo")
    candidates += [Path.home() / ".cargo" / "bin" / "cargo", "/root/.cargo/bin/cargo"]
    cargo = find_tool("cargo", candidates)
    return rust_toolchain(cargo) if cargo else None


def go_toolchain(go: str) -> Toolchain:
    real = os.path.realpath(go)
    goroot = os.path.dirname(os.path.dirname(real))  # .../go/bin/go -> .../go
    return Toolchain("go", {"go": go}, readonly_paths=_exposed([goroot]), path_dirs=(os.path.dirname(real),))


def find_go() -> Toolchain | None:
    go = find_tool("go", ("/usr/lib/go/bin/go", "/usr/local/go/bin/go"))
    return go_toolchain(go) if go else None


def find_node() -> Toolchain | None:
    """node and npm (npx when present). npm is a script run by node: both must be visible."""
    node = find_tool("node") or find_tool("nodejs")
    if node is None:
        return None
    tools = {"node": node}
    npm = find_tool("npm", (os.path.join(os.path.dirname(node), "npm"),))
    if npm:
        tools["npm"] = npm
        npx = _executable(os.path.join(os.path.dirname(npm), "npx"))
        if npx:
            tools["npx"] = npx
    # the node prefix (an nvm / tarball install keeps lib/node_modules/npm beside bin/)
    places = [os.path.dirname(os.path.dirname(os.path.realpath(node)))]
    if npm:
        places.append(os.path.dirname(os.path.dirname(os.path.realpath(npm))))
    dirs = [os.path.dirname(node)] + ([os.path.dirname(npm)] if npm else [])
    return Toolchain("node", tools, readonly_paths=_exposed([*places, *dirs]),
                     path_dirs=tuple(dict.fromkeys(dirs)))


_FINDERS = {"rust": find_rust, "go": find_go, "node": find_node}


def toolchain_of(command: Sequence[str]) -> ToolchainName | None:
    """Which toolchain a command needs (``cargo test`` -> rust), or None."""
    if not command:
        return None
    return _COMMANDS.get(os.path.basename(command[0]))


def for_command(command: Sequence[str]) -> Toolchain | None:
    """The toolchain ``command`` needs when it is one of cargo/go/npm/node... and it is installed."""
    name = toolchain_of(command)
    return _FINDERS[name]() if name else None
