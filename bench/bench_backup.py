"""Backup benchmark: NOA vs restic, whole processes, same tree, same run.

Tree: 20+ real sdists (``pip download --no-deps --no-binary :all:`` into
``~/.cache/noa-bench/sdists``), extracted, plus duplicates (three sdists copied a second
time under ``dup/``). Both tools get an encrypted local repository (restic always
encrypts; NOA with NOA_BACKUP_PASSWORD set) and are timed as separate processes:

1. first backup: time and repository size
2. second backup, nothing changed
3. restore of the latest snapshot into an empty directory (then ``diff -r``)
4. verify that re-reads all data (NOA verify vs ``restic check --read-data``)

Prints each figure and NOA/restic ratios (time ratio < 1 means NOA is faster; size
ratio < 1 means NOA's repository is smaller).

    .venv/bin/python bench/bench_backup.py [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NOA_BENCH_CACHE", Path.home() / ".cache" / "noa-bench"))
SDISTS = [
    "Django==5.2.1", "Django==5.2", "sympy==1.14.0", "pip==25.1.1", "pip==25.0.1", "setuptools==80.9.0",
    "cachetools==8.0.2", "toolz==1.2.0", "toolz==1.0.0", "click==8.5.1", "click==8.1.8", "more-itertools==11.2.1",
    "attrs==25.3.0", "attrs==24.2.0", "requests==2.32.3", "requests==2.32.4", "idna==3.10", "six==1.17.0",
    "packaging==24.2", "packaging==25.0", "pyparsing==3.2.3", "Jinja2==3.1.6", "MarkupSafe==3.0.2",
    "certifi==2025.4.26", "urllib3==2.4.0", "charset-normalizer==3.4.2", "tomli==2.2.1", "typing_extensions==4.13.2",
    "pluggy==1.6.0", "iniconfig==2.1.0", "colorama==0.4.6", "python-dateutil==2.9.0.post0",
]
RESTIC = shutil.which("restic") or "/usr/bin/restic"
PASSWORD = "bench-password-not-secret"


def fetch_sdists() -> list[Path]:
    d = CACHE / "sdists"
    d.mkdir(parents=True, exist_ok=True)
    for spec in SDISTS:
        name, version = spec.split("==")
        stem = f"{name}-{version}".lower().replace("-", "_")
        if not any(p.name.lower().replace("-", "_").startswith(stem) for p in d.iterdir()):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "-d", str(d), spec], check=True)
    return sorted(p for p in d.iterdir() if p.name.endswith((".tar.gz", ".zip")))


def build_tree() -> Path:
    tree = CACHE / "tree-backup"
    marker = tree / ".complete"
    if marker.exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archives = fetch_sdists()
    for a in archives:
        if a.name.endswith(".tar.gz"):
            with tarfile.open(a) as tf:
                tf.extractall(tree, filter="data")
        else:
            shutil.unpack_archive(a, tree)
    firsts = sorted(p for p in tree.iterdir() if p.is_dir())[:3]
    for p in firsts:
        shutil.copytree(p, tree / "dup" / p.name, symlinks=True)
    marker.write_text("")
    return tree


def tree_size(tree: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(tree):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            size += st.st_size
    return files, size


def du(path: Path) -> int:
    return sum(os.lstat(os.path.join(dp, n)).st_size for dp, _d, ns in os.walk(path) for n in ns)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def noa_cmd() -> list[str]:
    noa = ROOT / ".venv" / "bin" / "noa"
    probe = subprocess.run([str(noa), "workspace", "backup", "--help"], capture_output=True, text=True)
    if noa.exists() and probe.returncode == 0:
        return [str(noa), "workspace"]
    return [sys.executable, "-m", "noa_core.cli.backup_app"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1, help="repeat everything, report the best of N")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if not Path(RESTIC).exists():
        raise SystemExit("restic is not installed (apt install restic)")
    tree = build_tree()
    nfiles, nbytes = tree_size(tree)
    nsd = len([p for p in tree.iterdir() if p.is_dir() and p.name != "dup"])
    print(f"tree: {nsd} sdists + {len(list((tree / 'dup').iterdir()))} duplicated, {nfiles:,} files, "
          f"{nbytes / 2**20:,.1f} MiB")
    noa = noa_cmd()
    restic_version = subprocess.run([RESTIC, "version"], capture_output=True, text=True).stdout.strip()
    print(f"NOA command: {' '.join(noa[-2:])}; restic: {restic_version}")
    best: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        scratch = Path(tempfile.mkdtemp(prefix="noa-bench-backup-"))
        try:
            env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "NOA_BACKUP_PASSWORD": PASSWORD,
                   "NOA_HOME": str(scratch / "home"), "RESTIC_CACHE_DIR": str(scratch / "restic-cache"),
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
            env.pop("NOA_BACKUP_REPO", None)
            rrepo, nrepo = scratch / "restic-repo", scratch / "noa-repo"
            subprocess.run([RESTIC, "init", "-q", "--repo", str(rrepo)], env=env, check=True, capture_output=True)
            r: dict[str, float] = {}
            r["restic first"] = timed([RESTIC, "backup", "-q", "--repo", str(rrepo), str(tree)], env)
            r["noa first"] = timed(noa + ["backup", str(tree), "--repo", str(nrepo)], env)
            sizes["restic"], sizes["noa"] = du(rrepo), du(nrepo)
            r["restic unchanged"] = timed([RESTIC, "backup", "-q", "--repo", str(rrepo), str(tree)], env)
            r["noa unchanged"] = timed(noa + ["backup", str(tree), "--repo", str(nrepo)], env)
            r["restic restore"] = timed([RESTIC, "restore", "-q", "latest", "--repo", str(rrepo),
                                         "--target", str(scratch / "r-out")], env)
            r["noa restore"] = timed(noa + ["restore", "latest", str(scratch / "n-out"), "--repo", str(nrepo)], env)
            r["restic check --read-data"] = timed([RESTIC, "check", "-q", "--read-data", "--repo", str(rrepo)], env)
            r["noa verify"] = timed(noa + ["verify", "--repo", str(nrepo)], env)
            diff = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(scratch / "n-out")],
                                  capture_output=True)
            if diff.returncode != 0:
                raise SystemExit("NOA restore differs from the source tree:\n" + diff.stdout.decode()[-2000:])
            for k, v in r.items():
                best[k] = min(best.get(k, v), v)
        finally:
            if args.keep:
                print(f"kept {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'step':28s} {'restic':>9s} {'noa':>9s} {'noa/restic':>11s}")
    for step, rk, nk in (("first backup (s)", "restic first", "noa first"),
                         ("unchanged backup (s)", "restic unchanged", "noa unchanged"),
                         ("restore (s)", "restic restore", "noa restore"),
                         ("verify, all data (s)", "restic check --read-data", "noa verify")):
        print(f"{step:28s} {best[rk]:9.2f} {best[nk]:9.2f} {best[nk] / best[rk]:11.2f}")
    print(f"{'repository size (MB)':28s} {sizes['restic'] / 1e6:9.1f} {sizes['noa'] / 1e6:9.1f} "
          f"{sizes['noa'] / sizes['restic']:11.2f}")
    print("restore: diff -r clean")


if __name__ == "__main__":
    main()
