"""Workspace scan benchmark: NOA vs git and b3sum, whole processes, same tree, same run.

Tree: the real sdists in ``~/.cache/noa-bench/sdists`` (``pip download --no-deps
--no-binary :all:``; at least 20), extracted under ``~/.cache/noa-bench/tree-workspace``,
with every fourth one copied a second time under ``dup/`` (duplicates for the SOT
archive). The tree is also a git repository (committed once) for ``git status``.

1. first scan (fresh NOA_HOME): whole process time, files, bytes, SOT bytes saved, and
   the hashing phase's throughput -- against ``b3sum`` over the same files (goal >= 70%)
2. unchanged rescan, median of N runs: ``noa workspace scan`` (the Typer CLI) and the lean
   entry ``python -m noa_core.workspace scan`` -- against ``git status`` (goal within 2x)

    .venv/bin/python bench/bench_workspace_scan.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NOA_BENCH_CACHE", Path.home() / ".cache" / "noa-bench"))
SDIST_DIR = CACHE / "sdists"
TREE = CACHE / "tree-workspace"
PY = sys.executable
CLI = ("from noa_core.cli.main import app; from noa_core.cli.workspace_cmd import register;"
       "import sys; register(app); app(sys.argv[1:], prog_name='noa')")
GIT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def build_tree() -> Path:
    sdists = sorted(SDIST_DIR.glob("*.tar.gz"))
    if len(sdists) < 20:
        sys.exit(f"need 20+ sdists in {SDIST_DIR} (pip download --no-deps --no-binary :all: -d {SDIST_DIR} ...); "
                 f"found {len(sdists)}")
    marker = CACHE / "tree-workspace.complete"
    if marker.is_file() and marker.read_text() == "\n".join(p.name for p in sdists):
        return TREE
    shutil.rmtree(TREE, ignore_errors=True)
    (TREE / "dup").mkdir(parents=True)
    for i, sdist in enumerate(sdists):
        with tarfile.open(sdist) as tar:
            tar.extractall(TREE, filter="data")
        if i % 4 == 0:
            top = sdist.name.removesuffix(".tar.gz")
            if (TREE / top).is_dir():
                shutil.copytree(TREE / top, TREE / "dup" / top, symlinks=True)
    subprocess.run(["git", "init", "-q", str(TREE)], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(TREE), "add", "-A", "-f", "."], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(TREE), "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                    "-q", "-m", "tree"], check=True, env=GIT_ENV)
    marker.write_text("\n".join(p.name for p in sdists))
    return TREE


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): {proc.stderr[-800:]}")
    return elapsed, proc


def median_time(cmd: list[str], rounds: int, **kw) -> float:
    timed(cmd, **kw)  # warm-up
    return statistics.median(timed(cmd, **kw)[0] for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tree = build_tree()
    files = [os.path.join(d, f) for d, dirs, names in os.walk(tree) if not d.startswith(str(tree / ".git"))
             for f in names]
    total = sum(os.lstat(f).st_size for f in files if os.path.isfile(f) and not os.path.islink(f))
    print(f"tree: {tree} ({len(list(SDIST_DIR.glob('*.tar.gz')))} sdists + duplicates): {len(files)} files, "
          f"{total / 1048576:.1f} MiB; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    home = Path(tempfile.mkdtemp(prefix="noa-bench-ws-"))
    try:
        listing = home / "files.txt"
        listing.write_bytes(b"\0".join(os.fsencode(f) for f in files if not os.path.islink(f)))
        b3 = ["sh", "-c", f"xargs -0 b3sum < {listing} > /dev/null"]
        timed(b3)  # warm the page cache for both tools
        b3_s = median_time(b3, max(1, args.rounds // 2))

        first_s, proc = timed([PY, "-m", "noa_core.workspace", "scan", str(tree), "--home", str(home / "h1"),
                               "--json"], cwd=ROOT)
        first = json.loads(proc.stdout)
        hash_mibs = first["hashed_bytes"] / 1048576 / first["hash_seconds"]
        b3_mibs = total / 1048576 / b3_s
        print(f"first scan (whole process): {first_s:.2f} s; {first['files']} files, {first['hashed_bytes'] / 1048576:.1f}"
              f" MiB hashed in {first['hash_seconds']:.2f} s = {hash_mibs:.0f} MiB/s; duplicates {first['duplicate_files']}"
              f" files ({first['duplicate_bytes'] / 1048576:.1f} MiB), archive {first['archive_bytes'] / 1048576:.1f} MiB"
              f" zstd, saved {first['saved_bytes'] / 1048576:.1f} MiB")
        print(f"b3sum (whole process, same files): {b3_s:.2f} s = {b3_mibs:.0f} MiB/s")
        print(f"RATIO hashing throughput NOA/b3sum: {hash_mibs / b3_mibs:.2f} (goal >= 0.70)")
        print(f"RATIO first scan whole process / b3sum: {first_s / b3_s:.2f} (includes registry writes, zstd archive)")

        home_cli = home / "h1"
        git_s = median_time(["git", "-C", str(tree), "status", "--porcelain"], args.rounds, env=GIT_ENV)
        lean_s = median_time([PY, "-m", "noa_core.workspace", "scan", str(tree), "--home", str(home_cli)],
                             args.rounds, cwd=ROOT)
        cli_s = median_time([PY, "-c", CLI, "workspace", "scan", str(tree), "--home", str(home_cli)], args.rounds,
                            cwd=ROOT)
        py_s = median_time([PY, "-c", "pass"], args.rounds)
        _, again = timed([PY, "-m", "noa_core.workspace", "scan", str(tree), "--home", str(home_cli), "--json"],
                         cwd=ROOT)
        doc = json.loads(again.stdout)
        assert doc["hashed_files"] == 0 and doc["unchanged"] == first["files"], doc
        print(f"unchanged rescan (median of {args.rounds}): git status {git_s * 1000:.0f} ms; "
              f"python -m noa_core.workspace scan {lean_s * 1000:.0f} ms; noa workspace scan (Typer CLI) "
              f"{cli_s * 1000:.0f} ms; bare python startup {py_s * 1000:.0f} ms")
        print(f"RATIO unchanged rescan lean/git status: {lean_s / git_s:.2f} (goal <= 2.0)")
        print(f"RATIO unchanged rescan noa CLI/git status: {cli_s / git_s:.2f} (goal <= 2.0)")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
