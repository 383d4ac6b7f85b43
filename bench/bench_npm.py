"""npm metadata benchmark: NOA's npm analyzer vs ``npm outdated``, same projects, same run.

Projects: integrations/vscode (3 direct dev dependencies, lockfile v3) and the Azurite
install under .venv/azurite (1 direct dependency, 374 locked packages). Both tools ask
the registry this machine reaches (``npm config get registry``).

1. direct dependencies: ``npm outdated --json`` vs NOA cold (empty cache) and warm (cached)
2. every locked package (Azurite): ``npm outdated --all --json`` vs NOA ``transitive=True``

NOA's numbers are in-process (the analyzer call); npm's are whole processes (node start
about 0.1-0.2 s included). npm outdated reports current/wanted/latest; NOA also reads the
deprecation message and the licence of every installed version.

    .venv/bin/python bench/bench_npm.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = {"vscode-extension": ROOT / "integrations" / "vscode", "azurite": ROOT / ".venv" / "azurite"}


def npm_outdated(tree: Path, all_: bool) -> float:
    t0 = time.perf_counter()
    subprocess.run(["npm", "outdated", "--json", *(["--all"] if all_ else [])], cwd=tree, capture_output=True,
                   check=False, timeout=600)  # exit 1 when something is outdated
    return time.perf_counter() - t0


def noa(tree: Path, home: Path, transitive: bool) -> tuple[float, int, int]:
    from noa_core.analysis.npm import NpmAnalyzer
    from noa_core.config import NoaSettings

    t0 = time.perf_counter()
    result = NpmAnalyzer(NoaSettings(home=home), transitive=transitive).analyze(tree)
    return time.perf_counter() - t0, len(result.data.get("packages", [])), result.data.get("requests", 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("npm") is None:
        raise SystemExit("npm is not installed")
    rows = []
    for name, tree in PROJECTS.items():
        if not (tree / "node_modules").is_dir():
            print(f"{name}: no node_modules, skipped")
            continue
        for transitive in ((False, True) if name == "azurite" else (False,)):
            plain = statistics.median(npm_outdated(tree, transitive) for _ in range(args.rounds))
            colds, warms = [], []
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory() as home:
                    cold, packages, requests = noa(tree, Path(home), transitive)
                    warm, _, _ = noa(tree, Path(home), transitive)
                colds.append(cold)
                warms.append(warm)
            cold, warm = statistics.median(colds), statistics.median(warms)
            label = f"{name} ({'all locked' if transitive else 'direct'}, {packages} packages, {requests} requests)"
            rows.append((label, plain, cold, warm))
    print(f"{'project':58} {'npm outdated':>12} {'NOA cold':>9} {'NOA warm':>9} {'cold/npm':>8} {'warm/npm':>8}")
    for label, plain, cold, warm in rows:
        print(f"{label:58} {plain:11.2f}s {cold:8.2f}s {warm:8.3f}s {cold / plain:8.2f} {warm / plain:8.3f}")


if __name__ == "__main__":
    main()
