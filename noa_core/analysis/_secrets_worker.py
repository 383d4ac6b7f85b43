"""Child process of the ``secrets`` analyzer: runs detect-secrets over a list of files.

Run as a script (``python -I _secrets_worker.py REQUEST RESULTS``), never imported by
the parent. REQUEST is a JSON file ``{"root": ..., "files": [relative paths], "baseline": {rel:
[[type, hashed_secret], ...]}}``; one JSON line per file scanned is appended to RESULTS
as soon as the file is done: ``{"file": rel, "secrets": [{"type", "line", "allowlisted",
"baselined"}]}``. ``baselined`` compares type and SHA-1 of the value with the project's
``.secrets.baseline`` entries for that file, as detect-secrets does. Neither the secret
value nor its hash ever leaves this process.

Two detect-secrets line filters are applied after a hit instead of before every line:
``is_indirect_reference`` (its regular expression costs more than the scan itself on
long lines) and ``is_line_allowlisted`` (a ``pragma: allowlist secret`` comment in a
received tree does not hide a finding; it is reported as allowlisted).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    root: str = request["root"]
    baseline: dict[str, list[list[str]]] = request.get("baseline") or {}
    results = open(sys.argv[2], "a", encoding="utf-8")  # noqa: SIM115 - kept open, flushed per file

    from detect_secrets.core.scan import scan_file
    from detect_secrets.filters.allowlist import is_line_allowlisted
    from detect_secrets.filters.heuristic import is_indirect_reference
    from detect_secrets.settings import default_settings
    from detect_secrets.util.code_snippet import get_code_snippet

    deferred = ("detect_secrets.filters.heuristic.is_indirect_reference",
                "detect_secrets.filters.allowlist.is_line_allowlisted")
    with default_settings() as settings:
        settings.disable_filters(*deferred)
        for rel in request["files"]:
            path = os.path.join(root, rel)
            found = []
            try:
                waived = {(t, h) for t, h in baseline.get(rel, [])}
                hits = [(s.type, s.line_number, (s.type, s.secret_hash) in waived) for s in scan_file(path)]
                lines = _lines(path) if hits else []
                for kind, number, baselined in hits:
                    line = lines[number - 1].rstrip("\n") if 0 < number <= len(lines) else ""
                    if is_indirect_reference(line):
                        continue
                    snippet = get_code_snippet(lines=lines, line_number=number)
                    found.append({"type": kind, "line": number,
                                  "allowlisted": bool(is_line_allowlisted(path, line, snippet)),
                                  "baselined": baselined})
            except Exception as exc:  # a file the library chokes on: say so, go on
                _emit(results, {"file": rel, "error": type(exc).__name__})
                continue
            _emit(results, {"file": rel, "secrets": found})
    results.close()
    return 0


def _emit(results: TextIO, record: dict[str, object]) -> None:
    results.write(json.dumps(record) + "\n")
    results.flush()


def _lines(path: str) -> list[str]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as handle:
        return handle.readlines()


if __name__ == "__main__":
    sys.exit(main())
