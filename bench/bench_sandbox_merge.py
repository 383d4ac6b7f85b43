#!/usr/bin/env python
"""Time NOA's sandbox conflict check on a large real tree against ``git merge-tree`` alone.

Workspace: D holds a big real project (default: the Django 5.1.4 sdist, about 6,900
files, fetched once with ``pip download``); A changes 20 of its files, B changes 20 others
and deletes 5, C changes 5 more and adds a second project. Each lands the way drops land
(``WorkspaceRepo.land_drop``: the whole project tree each time).

Timed, median of ``--repeat`` runs:

* NOA: :func:`noa_core.sandbox.conflicts.check_conflicts` for A, B, C: 6 pairwise
  merge-trees (D included), 2 more for the cumulative queue, 2 throw-away commits, the
  parsing and the matrix;
* git alone: the same 8 ``git merge-tree --write-tree --name-only -z --messages`` calls
  from a plain Python loop (output read, not parsed), and a single one for scale;
* the same with a content conflict between A and B.

Prints a table and the ratio NOA / git alone.
Usage: bench/bench_sandbox_merge.py [--source DIR_OR_SDIST] [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noa_core.config import HomeLayout
from noa_core.sandbox.conflicts import check_conflicts
from noa_core.sandbox.merge import build_integration
from noa_core.sandbox.repository import WorkspaceRepo

DEFAULT_SPEC = "django==5.1.4"


def fetch_default(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("[Dd]jango-*.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        DEFAULT_SPEC, "-d", str(cache)], check=True)
        found = sorted(cache.glob("[Dd]jango-*.tar.gz"))
    return found[-1]


def unpack(source: Path, dest: Path) -> Path:
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True)
        return dest
    with tarfile.open(source) as tf:
        tf.extractall(dest, filter="data")
    children = [p for p in dest.iterdir() if p.is_dir()]
    return children[0] if len(children) == 1 else dest


def variant(base: Path, dest: Path, edit: list[Path], delete: list[Path], tag: str,
            extra: dict[str, str] | None = None) -> Path:
    shutil.copytree(base, dest, symlinks=True)
    for rel in edit:
        with open(dest / rel, "a", encoding="utf-8") as fh:
            fh.write(f"# changed in sandbox {tag}\n")
    for rel in delete:
        (dest / rel).unlink()
    for rel, text in (extra or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def git_alone(repo: Path, pairs: list[tuple[str, str]]) -> None:
    for ours, theirs in pairs:
        subprocess.run(["git", f"--git-dir={repo}", "merge-tree", "--write-tree", "--name-only", "-z", "--messages",
                        ours, theirs], capture_output=True, check=False)


def scenario(work: Path, tree: Path, *, conflict: bool, repeat: int) -> dict[str, float | int | str]:
    files = sorted(p.relative_to(tree) for p in tree.rglob("*.py") if p.is_file() and not p.is_symlink())
    layout = HomeLayout(work / "home")
    repo = WorkspaceRepo(layout)
    repo.ensure()
    t0 = time.perf_counter()
    repo.land_drop(tree, "big", "D", "base")
    land_d = time.perf_counter() - t0
    a_edit, b_edit = files[0:20], files[20:40]
    if conflict:
        b_edit = [files[0], *b_edit[1:]]  # A and B both append to files[0]: a content conflict
    trees = {
        "A": variant(tree, work / "A", a_edit, [], "A"),
        "B": variant(tree, work / "B", b_edit, files[40:45], "B"),
        "C": variant(tree, work / "C", files[45:50], [], "C"),
    }
    for name, t in trees.items():
        repo.land_drop(t, "big", name, f"change {name}")
    extra = work / "extra"
    extra.mkdir()
    (extra / "mod.py").write_text("X = 1\n")
    repo.land_drop(extra, "extra", "C", "second project")

    heads = repo.heads()
    report = check_conflicts(repo, ["A", "B", "C"], heads=heads, d_head=heads["D"])  # as the flow calls it
    noa = median_time(lambda: check_conflicts(repo, ["A", "B", "C"], heads=heads, d_head=heads["D"]), repeat)
    noa_unpinned = median_time(lambda: check_conflicts(repo, ["A", "B", "C"]), repeat)
    calls = [(heads[a], heads[b]) for a, b in combinations("DABC", 2)]
    current = heads["D"]
    for i, step in enumerate(report.queue):  # the cumulative steps after D+A (which reuses the D x A pair)
        if i:
            calls.append((current, heads[step.sandbox]))
        current = step.commit or current
    assert len(calls) == report.merge_tree_calls
    raw = median_time(lambda: git_alone(layout.repo, calls), repeat)
    single = median_time(lambda: git_alone(layout.repo, calls[3:4]), repeat)  # A x B
    build = None
    if not report.has_conflicts:
        build = median_time(lambda: build_integration(repo, heads["D"], heads, ["A", "B", "C"]), repeat)
    return {"files": sum(1 for p in tree.rglob("*") if p.is_file()), "conflicts": len(report.conflicts),
            "noa_unpinned_s": noa_unpinned,
            "merge_tree_calls": report.merge_tree_calls, "land_D_s": land_d, "noa_check_s": noa,
            "git_alone_s": raw, "single_merge_tree_s": single, "ratio": noa / raw,
            "build_integration_s": build if build is not None else float("nan"),
            "kinds": ", ".join(sorted({c.kind for c in report.conflicts})) or "-"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, help="a directory or an sdist (.tar.gz); default: Django's sdist")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noa-bench-merge-") as tmp:
        work = Path(tmp)
        source = args.source or fetch_default(Path(tempfile.gettempdir()) / "noa-bench-cache")
        tree = unpack(source, work / "src")
        rows = {}
        for conflict in (False, True):
            sub = work / ("conflict" if conflict else "clean")
            sub.mkdir()
            rows["content conflict A x B" if conflict else "clean"] = scenario(sub, tree, conflict=conflict,
                                                                                repeat=args.repeat)
    print(f"source: {source}")
    header = ("scenario", "files", "merge-trees", "NOA check", "(reading heads too)", "git alone", "ratio",
              "1 merge-tree",
              "build commit", "conflicts")
    print(" | ".join(header))
    for name, r in rows.items():
        print(" | ".join([name, str(r["files"]), str(r["merge_tree_calls"]), f"{r['noa_check_s'] * 1000:.0f} ms",
                          f"{r['noa_unpinned_s'] * 1000:.0f} ms",
                          f"{r['git_alone_s'] * 1000:.0f} ms", f"{r['ratio']:.2f}",
                          f"{r['single_merge_tree_s'] * 1000:.0f} ms",
                          f"{r['build_integration_s'] * 1000:.0f} ms", f"{r['conflicts']} ({r['kinds']})"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
