"""``python -m noa_core.workspace scan [PATH] [--home DIR] [--json]``: the lean entry point.

The same scan as ``noa workspace scan``, but an unchanged tree is answered from the
index alone, before Typer, pydantic, SQLAlchemy or Prefect are imported (what a shell
prompt or an editor hook wants: git-status speed). Anything else goes to the full scan.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _usage() -> int:
    sys.stderr.write("usage: python -m noa_core.workspace scan [PATH] [--home DIR] [--json]\n")
    return 2


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "scan":
        return _usage()
    args = argv[1:]
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    home_text = os.environ.get("NOA_HOME") or ".noa"
    if "--home" in args:
        i = args.index("--home")
        if i + 1 >= len(args):
            return _usage()
        home_text = args[i + 1]
        del args[i:i + 2]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        return _usage()
    started = time.perf_counter()
    root = Path(args[0] if args else ".")
    if not root.is_dir():
        sys.stderr.write(f"noa: error: {root}: not a directory\n")
        return 2
    root_text = os.fspath(root.resolve())
    home = Path(home_text).expanduser().resolve()

    from noa_core.workspace.index import load_index
    from noa_core.workspace.scan import compare, unchanged_report, walk

    report = None
    index = load_index(home / "workspace" / "index", root_text)
    if index is not None:
        current, skipped = walk(Path(root_text), skip_dirs={os.fspath(home)})
        candidates, _racy, gone = compare(current, index.entries, index.written_ns)
        if not candidates and not gone:
            report = unchanged_report(root_text, index, current, skipped, time.perf_counter() - started)
    if report is None:
        from noa_core.config import NoaSettings
        from noa_core.errors import NoaError
        from noa_core.workspace.scan import scan

        try:
            report = scan(NoaSettings(home=home), Path(root_text))
        except NoaError as exc:
            sys.stderr.write("noa: error: " + exc.one_line() + "\n")
            return exc.exit_code
    doc = report.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(f"{doc['root']}: {doc['files']} files, +{doc['added']} ~{doc['modified']} -{doc['deleted']}, "
                         f"{doc['unchanged']} unchanged, {doc['hashed_files']} hashed; SOT saved {doc['saved_bytes']} B\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
