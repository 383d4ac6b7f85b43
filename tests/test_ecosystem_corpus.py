"""The ecosystem check: every corpus project through `noa pipeline`, in one workspace, as by hand.

tests/data/ecosystem_corpus.json names real projects of every language NOA tests (PyPI
sdists, Rust crates and Go modules as Debian ships them, npm packages) with what their own
tools printed by hand and how that was obtained. bench/ecosystem_check.py drops them one
after the other into the same NOA_HOME with the real `noa` CLI, against this session's
Prefect server; any difference in verdict or test counts fails here, with the whole table.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.network]

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "ecosystem_check.py"


def load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noa_ecosystem_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_every_corpus_project_gets_the_plain_tools_verdict_and_counts(prefect_api_url: str, tmp_path: Path) -> None:
    checker = load_checker()
    corpus = checker.load_corpus()
    languages = {p["language"] for p in corpus}
    assert languages == {"python", "rust", "go", "javascript"}
    assert all(sum(p["language"] == lang for p in corpus) >= 3 for lang in languages)
    if shutil.which("npm") is None or not checker.DEBIAN_CRATES.is_dir() or not checker.DEBIAN_GOCODE.is_dir():
        pytest.skip("npm or Debian's crate/Go source packages are missing (scripts/bootstrap.sh --test installs them)")

    outcomes = checker.check(corpus, tmp_path / "home", api_url=prefect_api_url)
    table = checker.markdown_table(outcomes)
    assert not [o.name for o in outcomes if o.differences], table
    # the planted key fails the security gate although its tests pass; no report holds the key
    planted = next(o for o in outcomes if o.name == "xxhash-planted-key")
    assert (planted.verdict, planted.stopped_by) == ("failed", "security"), table
    key_file = tmp_path / "home-sources" / "xxhash-planted-key" / "zz_planted_test.go"
    key_id = key_file.read_text().split('awsAccessKeyID = "')[1].split('"')[0]
    reports = tmp_path / "home" / "reports"
    leaked = [p for p in reports.rglob("*") if p.is_file() and key_id in p.read_text(errors="replace")]
    assert not leaked, leaked
    json.dumps([o.as_dict() for o in outcomes])  # the table's data is plain JSON
