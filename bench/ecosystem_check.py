"""NOA's ecosystem check: real projects of every language through `noa pipeline`, in one workspace.

Like ruff's and mypy's ecosystem checks: the corpus (tests/data/ecosystem_corpus.json) names
real projects nobody here wrote - PyPI sdists, Rust crates and Go modules as Debian ships
them, npm packages - with what their own tools printed by hand (and how that was obtained).
Each one is dropped with the real `noa` CLI into the same NOA_HOME, one after the other, as
a user adding projects to one workspace would; the table compares NOA's verdict and test
counts with the plain tools'.

    .venv/bin/python bench/ecosystem_check.py [--home DIR] [--only NAME ...] [--markdown FILE]

Exit status 1 when any project differs from the corpus. tests/test_ecosystem_corpus.py
(slow) runs the same code against the test session's Prefect server.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "ecosystem_corpus.json"
DEBIAN_CRATES = Path("/usr/share/cargo/registry")
DEBIAN_GOCODE = Path("/usr/share/gocode/src")
COUNTED = ("passed", "failed", "skipped")


class SourceUnavailable(Exception):
    """The project cannot be fetched on this machine (a Debian package is not installed, no npm)."""


@dataclass(frozen=True)
class Outcome:
    """One project through `noa pipeline`: what NOA said, beside what the corpus expects."""

    name: str
    language: str
    expected: Mapping[str, Any]
    plain: Mapping[str, Any]
    verdict: str = ""
    stopped_by: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    @property
    def differences(self) -> list[str]:
        if self.error:
            return [self.error]
        out = []
        if self.verdict != self.expected["verdict"]:
            out.append(f"verdict {self.verdict} (expected {self.expected['verdict']})")
        if self.expected.get("stopped_by") and self.stopped_by != self.expected["stopped_by"]:
            out.append(f"stopped by {self.stopped_by or 'nothing'} (expected {self.expected['stopped_by']})")
        for key in COUNTED:
            if self.counts.get(key) != self.plain.get(key):
                out.append(f"{key} {self.counts.get(key)} (by hand {self.plain.get(key)})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "language": self.language, "verdict": self.verdict, "stopped_by": self.stopped_by,
                "counts": dict(self.counts), "plain": dict(self.plain), "expected": dict(self.expected),
                "seconds": round(self.seconds, 1), "differences": self.differences}


def load_corpus(path: Path = CORPUS_PATH) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text(encoding="utf-8"))["projects"])


# ----------------------------------------------------------------------------- sources


def _copy_writable(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
    return dest


def _npm_pack(spec: str, dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", spec, "--pack-destination", tmp, "--silent"], capture_output=True,
                              text=True, check=False, timeout=300)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise SourceUnavailable(f"npm pack {spec} failed: {proc.stderr.strip()[-300:]}")
        dest.mkdir(parents=True)
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
            tar.extractall(dest, members=[m for m in tar.getmembers() if m.name], filter="data")
    return dest


def _go_package_clause(tree: Path) -> str:
    for test in sorted(tree.glob("*_test.go")):
        for line in test.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("package "):
                return line.split()[1]
    raise SourceUnavailable(f"no Go test file in {tree} to plant a key beside")


def plant_aws_key(tree: Path) -> str:
    """An AWS-format access key pair in a new test file of the module (valid Go: unused
    constants compile). Made up at run time, so no key is ever committed; returns the file."""
    upper = string.ascii_uppercase + string.digits
    key_id = "AKIA" + "".join(secrets.choice(upper) for _ in range(16))
    secret = "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    path = tree / "zz_planted_test.go"
    path.write_text(f"package {_go_package_clause(tree)}\n\nconst awsAccessKeyID = \"{key_id}\"\n"
                    f"const awsSecretAccessKey = \"{secret}\"\n", encoding="utf-8")
    return path.name


def fetch_source(project: Mapping[str, Any], staging: Path) -> str:
    """What to give `noa pipeline` for the project: a ``pypi:`` spec or a directory under ``staging``."""
    kind, source, name = project["kind"], project["source"], project["name"]
    if kind == "pypi":
        return f"pypi:{source}"
    dest = staging / name
    if dest.exists():
        shutil.rmtree(dest)
    if kind == "debian-crate":
        src = DEBIAN_CRATES / source
        if not src.is_dir():
            raise SourceUnavailable(f"{src} is missing: apt-get install {project.get('package')}")
        _copy_writable(src, dest)
        (dest / "Cargo.lock").unlink(missing_ok=True)
    elif kind == "debian-go":
        src = DEBIAN_GOCODE / source
        if not src.is_dir():
            raise SourceUnavailable(f"{src} is missing: apt-get install {project.get('package')}")
        _copy_writable(src, dest)
    elif kind == "npm":
        _npm_pack(source, dest)
    else:
        raise ValueError(f"unknown corpus kind {kind!r}")
    if project.get("plant") == "aws-access-key":
        plant_aws_key(dest)
    return str(dest)


# ------------------------------------------------------------------------------- runs


def noa_env(api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOA_") or k in (
        "NOA_PYENV_CACHE", "NOA_PYPI_INDEX_URL", "NOA_NPM_REGISTRY", "NOA_CARGO_SOURCE")}
    if api_url:
        env = {k: v for k, v in env.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=api_url, PREFECT_LOGGING_LEVEL="WARNING",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def run_pipeline(source: str, home: Path, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "noa_core.cli", "pipeline", source, "--json", "--no-ai",
                           "--home", str(home)], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          check=False, timeout=3600)
    try:
        report = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"noa pipeline printed no JSON (exit {proc.returncode}): {proc.stderr.strip()[-800:]}") \
            from exc
    if not isinstance(report, dict):
        raise RuntimeError(f"noa pipeline printed {type(report).__name__}, not an object")
    return report


def read_outcome(project: Mapping[str, Any], report: Mapping[str, Any], seconds: float) -> Outcome:
    stages = report.get("stages") or []
    testing = next((s for s in stages if s.get("name") == "testing"), {})
    counts = (testing.get("data") or {}).get("counts") or {}
    stopped = next((s.get("name", "") for s in stages if s.get("status") == "failed"), "")
    return Outcome(project["name"], project["language"], project["noa"], project["plain"],
                   verdict=str(report.get("verdict")), stopped_by=stopped,
                   counts={k: int(counts.get(k) or 0) for k in COUNTED}, seconds=seconds)


def check(projects: Sequence[Mapping[str, Any]], home: Path, *, api_url: str | None = None,
          on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Every project through `noa pipeline` in the one workspace ``home``, in corpus order."""
    env = noa_env(api_url)
    staging = home.parent / f"{home.name}-sources"
    staging.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for project in projects:
        t0 = time.perf_counter()
        try:
            source = fetch_source(project, staging)
            outcome = read_outcome(project, run_pipeline(source, home, env, staging), time.perf_counter() - t0)
        except (SourceUnavailable, RuntimeError, subprocess.TimeoutExpired) as exc:
            outcome = Outcome(project["name"], project["language"], project["noa"], project["plain"],
                              seconds=time.perf_counter() - t0, error=str(exc))
        outcomes.append(outcome)
        if on_result:
            on_result(outcome)
    return outcomes


# ------------------------------------------------------------------------------ table


def _counts(c: Mapping[str, Any]) -> str:
    return f"{c.get('passed')} / {c.get('failed')} / {c.get('skipped')}"


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| project | language | by hand (passed / failed / skipped) | NOA | verdict | seconds | same |",
             "|---|---|---|---|---|---:|---|"]
    for o in outcomes:
        verdict = o.verdict + (f" ({o.stopped_by})" if o.stopped_by else "") if not o.error else "error"
        same = "yes" if not o.differences else "NO: " + "; ".join(o.differences)
        lines.append(f"| {o.name} | {o.language} | {_counts(o.plain)} | {_counts(o.counts) if o.counts else '-'} "
                     f"| {verdict} | {o.seconds:.0f} | {same} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="the workspace (default: a new temporary directory)")
    parser.add_argument("--only", nargs="*", help="project names to run (default: all)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    projects = [p for p in load_corpus() if not args.only or p["name"] in args.only]
    home = (args.home or Path(tempfile.mkdtemp(prefix="noa-ecosystem-")) / "home").resolve()
    print(f"ecosystem check: {len(projects)} projects through `noa pipeline` in {home}", file=sys.stderr)

    def progress(o: Outcome) -> None:
        state = "same" if not o.differences else "DIFFERENT: " + "; ".join(o.differences)
        print(f"  {o.name:<20} {o.language:<11} {o.verdict or 'error':<8} {o.seconds:6.1f} s  {state}",
              file=sys.stderr)

    try:
        outcomes = check(projects, home, on_result=progress)
    finally:  # the runs started the workspace's embedded Prefect server; it is not left running
        subprocess.run([sys.executable, "-m", "noa_core.cli", "prefect", "stop", "--home", str(home)],
                       env=noa_env(), capture_output=True, check=False, timeout=120)
    table = markdown_table(outcomes)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    (home.parent / "ecosystem.json").write_text(json.dumps([o.as_dict() for o in outcomes], indent=2))
    return 1 if any(o.differences for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
