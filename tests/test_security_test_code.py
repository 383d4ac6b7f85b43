"""Code-pattern findings in test files do not fail the security gate; the same code shipped does.

Seen on a real sdist (toolz 1.0.0): its test suite builds functions with ``exec()``, which
NOA's semgrep rule rates high, and the whole project failed the security gate for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis_helpers import write_tree

from noa_core.analysis.sast import SastAnalyzer
from noa_core.config import ExecLimits
from noa_core.manifest import GatesConfig
from noa_core.stages.gates import Gate, security_gate
from noa_core.stages.security import security_checks
from noa_core.stages.semgrep import run_semgrep

EXEC_HELPER = ("def make(params, body):\n    namespace = {}\n"
               "    exec('def func%s:\\n    %s' % (params, body), globals(), namespace)\n"
               "    return namespace['func']\n")
SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


def gate_of(tree: Path) -> tuple[Gate, list[dict[str, Any]], list[dict[str, Any]]]:
    analyzers = {"sast": SastAnalyzer().analyze(tree).as_dict()}
    rows, findings = security_checks(analyzers, run_semgrep(tree, ExecLimits()))
    return security_gate(findings, GatesConfig()), rows, findings


def test_exec_and_shell_in_tests_are_informational_and_the_gate_passes(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "lib", {
        "pyproject.toml": '[project]\nname = "lib"\nversion = "1"\n',
        "lib/__init__.py": "def add(a, b):\n    return a + b\n",
        "lib/tests/test_signatures.py": EXEC_HELPER + "\n\ndef test_make():\n    assert make('()', 'return 1')() == 1\n",
        "tests/helpers.py": SHELL,
    })
    gate, rows, findings = gate_of(tree)
    in_tests = [f for f in findings if f["path"] and f["path"].startswith(("lib/tests/", "tests/"))]
    assert {f["analyzer"] for f in in_tests} == {"sast", "semgrep"}
    assert all(f["severity"] == "info" for f in in_tests), in_tests
    exec_hit = next(f for f in in_tests if f["rule"] == "noa.python.eval-exec")
    assert exec_hit["reason"].startswith("high in shipped code; informational in a test file (directory 'tests/')")
    assert gate.passed, gate.reason
    semgrep_row = next(r for r in rows if r["check"] == "semgrep")
    assert "findings in test files" in semgrep_row["reason"]


def test_the_same_code_shipped_still_fails_the_gate(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "lib", {
        "pyproject.toml": '[project]\nname = "lib"\nversion = "1"\n',
        "lib/__init__.py": EXEC_HELPER,
        "lib/shell.py": SHELL,
    })
    gate, _rows, findings = gate_of(tree)
    assert not gate.passed and gate.value == "high"
    assert {(f["rule"], f["severity"]) for f in findings if f["analyzer"] == "semgrep"} >= {
        ("noa.python.eval-exec", "high"), ("noa.python.subprocess-shell-true", "high")}
