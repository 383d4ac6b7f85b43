"""semgrep's rule ids do not depend on where the rule files live: semgrep's ``check_id`` carries
the rule file's path (``<path as dots>.<rule id>``), so folders named ``noa`` or ``x.noa.y``
must not leak into the reported rule."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_swarm_support import write_tree

from noa_core.config import ExecLimits
from noa_core.stages.semgrep import (
    RULES_DIR,
    rule_files,
    rule_id_of,
    rule_ids,
    run_semgrep,
)


def test_rule_id_is_the_shipped_id_that_ends_the_check_id() -> None:
    ids = rule_ids(rule_files())
    assert "noa.python.eval-exec" in ids and len(ids) == len(set(ids)) >= 10
    for prefix in ("", "noa.", "noa.x.noa.y.", "tmp.noa.noa.python.", "home.u.noa.data.semgrep."):
        assert rule_id_of(prefix + "noa.python.eval-exec", ids) == "noa.python.eval-exec"
    # the longest shipped id wins; a dotted tail only (no partial word); unknown ids pass through
    assert rule_id_of("a.noa.b.c", ["c", "b.c", "noa.b.c"]) == "noa.b.c"
    assert rule_id_of("x.xnoa.python.eval-exec", ["noa.python.eval-exec"]) == "x.xnoa.python.eval-exec"
    assert rule_id_of("other.rule", ids) == "other.rule"


def test_real_semgrep_under_folders_named_noa_reports_the_shipped_rule_ids(tmp_path: Path) -> None:
    rules = tmp_path / "noa" / "x.noa.y" / "noa"
    shutil.copytree(RULES_DIR, rules)
    tree = write_tree(tmp_path / "noa" / "x.noa.y" / "project", {"app.py": """
        import os
        import subprocess


        def run(cmd):
            subprocess.run(cmd, shell=True)
            os.system(cmd)
            return eval(cmd)
    """})
    run = run_semgrep(tree, ExecLimits(), rules_dir=rules)
    assert run.status == "ok", run.reason
    found = {(f.rule, f.path) for f in run.findings}
    assert found == {("noa.python.subprocess-shell-true", "app.py"), ("noa.python.os-system", "app.py"),
                     ("noa.python.eval-exec", "app.py")}, found
    assert {f.rule for f in run.findings} <= set(rule_ids(rule_files(rules)))
    assert run.rules == len(rule_ids(rule_files()))
