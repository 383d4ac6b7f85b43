"""Analyzers that read the tree's manifests and files: languages, build system,
dependencies, tests, licence. No subprocesses; each runs in milliseconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:
    from analysis_helpers import (APACHE_NOTICE, BSD3_TEXT, GPL3_HEADER, MIT_TEXT, python_project,
                                  write_tree)
except ImportError:  # tests/ turned into a package
    from tests.analysis_helpers import (APACHE_NOTICE, BSD3_TEXT, GPL3_HEADER, MIT_TEXT,
                                        python_project, write_tree)

from noa_core.analysis.build_system import BuildSystemAnalyzer
from noa_core.analysis.dependencies import DependenciesAnalyzer
from noa_core.analysis.python_dependencies import pinned_version
from noa_core.analysis.languages import LanguagesAnalyzer
from noa_core.analysis.licence import LicenceAnalyzer
from noa_core.analysis.suites import TestsAnalyzer


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return python_project(tmp_path_factory.mktemp("project"))


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.lstat().st_mtime for p in root.rglob("*")}


# -- languages -----------------------------------------------------------------------

def test_languages_by_bytes_leave_out_vendored_and_generated(project: Path) -> None:
    r = LanguagesAnalyzer().analyze(project)
    assert r.status == "ok"
    assert r.data["primary"] == "Python"
    # vendor/bigdep/lib.js is 32 KB of JavaScript, more than all the Python: it must not count.
    assert "JavaScript" not in r.data["by_bytes"]
    assert r.data["excluded"]["vendored"] == 2
    # messages_pb2.py (generated) and package-lock.json (lock file)
    assert r.data["excluded"]["generated"] == 2
    assert "src/demo/messages_pb2.py" not in r.data["files"]
    # src/demo: __init__, core, settings; tests: __init__, test_core; bin/demo-tool (shebang)
    assert r.data["by_files"]["Python"] == 6
    assert {"Rust", "Go", "TOML", "JSON"} <= set(r.data["by_files"])


def test_languages_shebang_and_symlinks(project: Path) -> None:
    r = LanguagesAnalyzer().analyze(project)
    assert r.data["files"]["bin/demo-tool"] == "Python"
    assert r.data["symlinks_skipped"] == 2
    assert not any(p.startswith("etc-link/") for p in r.data["files"])
    assert "src/demo/hostname.py" not in r.data["files"]


def test_languages_do_not_write_into_the_tree(project: Path) -> None:
    before = _snapshot(project)
    for analyzer in (LanguagesAnalyzer(), BuildSystemAnalyzer(), DependenciesAnalyzer(),
                     TestsAnalyzer(), LicenceAnalyzer()):
        analyzer.analyze(project)
    assert _snapshot(project) == before


# -- build system --------------------------------------------------------------------

def test_build_system_polyglot(project: Path) -> None:
    r = BuildSystemAnalyzer().analyze(project)
    assert r.status == "ok"
    assert r.data["primary"] == "setuptools"
    assert r.data["build_command"] == ["python", "-m", "build"]
    assert r.data["artifacts"] == "wheel+sdist"
    assert {"setuptools", "cargo", "go", "npm"} <= set(r.data["systems"])


@pytest.mark.parametrize(("files", "primary", "command"), [
    ({"pyproject.toml": '[build-system]\nrequires=["hatchling"]\nbuild-backend="hatchling.build"\n'},
     "hatchling", ["python", "-m", "build"]),
    ({"pyproject.toml": '[build-system]\nrequires=["maturin>=1"]\nbuild-backend="maturin"\n',
      "Cargo.toml": '[package]\nname="x"\nversion="0.1.0"\n'}, "maturin", ["python", "-m", "build"]),
    ({"setup.py": "from setuptools import setup\nsetup(name='x')\n"}, "setuptools",
     ["python", "-m", "build"]),
    ({"Cargo.toml": '[package]\nname="x"\nversion="0.1.0"\n', "src/main.rs": "fn main(){}\n"},
     "cargo", ["cargo", "build", "--release"]),
    ({"package.json": '{"name":"x","scripts":{"build":"tsc"}}', "yarn.lock": ""}, "yarn",
     ["yarn", "run", "build"]),
    ({"CMakeLists.txt": "project(x)\n", "Makefile": "all:\n"}, "cmake", ["cmake", "--build", "build"]),
    ({"README": "nothing to build\n"}, None, None),
])
def test_build_system_kinds(tmp_path: Path, files: dict[str, str], primary: str | None,
                            command: list[str] | None) -> None:
    r = BuildSystemAnalyzer().analyze(write_tree(tmp_path, files))
    assert r.status == "ok"
    assert r.data["primary"] == primary
    assert r.data["build_command"] == command


def test_build_system_broken_pyproject_is_unknown(tmp_path: Path) -> None:
    r = BuildSystemAnalyzer().analyze(write_tree(tmp_path, {"pyproject.toml": "[build-system\n"}))
    assert r.status == "unknown"
    assert "pyproject.toml" in r.reason


# -- dependencies --------------------------------------------------------------------

def _by_name(deps: list[dict]) -> dict[str, dict]:
    return {d["name"]: d for d in deps}


def test_dependencies_all_ecosystems(project: Path) -> None:
    r = DependenciesAnalyzer().analyze(project)
    assert r.status == "ok", r.reason
    py = _by_name(r.data["python"])
    assert py["requests"]["spec"] == ">=2.31" and py["requests"]["group"] == "main"
    assert py["click"]["spec"] == "==8.1.8"
    assert py["pytest"]["group"] == "dev"
    assert "python_version" in py["tomli"]["marker"]
    js = _by_name(r.data["javascript"])
    assert js["express"]["group"] == "main" and js["left-pad"]["group"] == "dev"
    rust = _by_name(r.data["rust"])
    assert rust["serde"]["spec"] == "1.0" and rust["proptest"]["group"] == "dev"
    go = _by_name(r.data["go"])
    assert go["github.com/google/uuid"]["spec"] == "v1.6.0"
    assert go["golang.org/x/text"]["group"] == "indirect"
    assert r.data["counts"] == {"python": 4, "javascript": 2, "rust": 3, "go": 2}


def test_dependencies_requirements_setup_cfg_poetry(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "requirements.txt": "# pinned\nflask==3.0.3 \\\n    --hash=sha256:abc\n-r requirements-dev.txt\n"
                            "-e git+https://example.com/x.git#egg=xpkg\nrequests  # comment\n",
        "requirements-dev.txt": "pytest>=8\n",
        "setup.cfg": "[options]\ninstall_requires =\n    attrs>=23\n    six\n"
                     "[options.extras_require]\ndocs = sphinx\n",
        "pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nhttpx = "0.27.0"\n'
                          'rich = {version = "^13"}\n[tool.poetry.group.test.dependencies]\n'
                          'hypothesis = "*"\n',
    })
    r = DependenciesAnalyzer().analyze(tmp_path)
    assert r.status == "ok", r.reason
    py = _by_name(r.data["python"])
    assert py["flask"]["spec"] == "==3.0.3" and py["flask"]["group"] == "requirements.txt"
    assert py["xpkg"]["direct_url"] is True
    assert py["pytest"]["source"] == "requirements-dev.txt"
    assert py["attrs"]["source"] == "setup.cfg" and py["sphinx"]["group"] == "docs"
    assert "python" not in py
    assert pinned_version(py["httpx"]) == "0.27.0"  # Poetry bare version = exact
    assert pinned_version(py["rich"]) is None
    assert py["hypothesis"]["group"] == "test"
    assert pinned_version(py["flask"]) == "3.0.3"
    assert pinned_version(py["requests"]) is None


def test_dependencies_setup_py_literal_and_computed(tmp_path: Path) -> None:
    literal = write_tree(tmp_path / "literal", {
        "setup.py": "from setuptools import setup\nREQS = ['numpy>=1.26']\n"
                    "setup(name='x', install_requires=REQS, extras_require={'plot': ['matplotlib']})\n"})
    r = DependenciesAnalyzer().analyze(literal)
    assert r.status == "ok"
    assert {d["name"] for d in r.data["python"]} == {"numpy", "matplotlib"}

    marker = tmp_path / "executed"
    computed = write_tree(tmp_path / "computed", {
        "setup.py": f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                    "from setuptools import setup\n"
                    "setup(name='x', install_requires=open('reqs.txt').read().split())\n"})
    r = DependenciesAnalyzer().analyze(computed)
    assert r.status == "unknown"
    assert "setup.py" in r.reason and "not a literal" in r.reason
    assert not marker.exists(), "setup.py must never be executed"


def test_dependencies_pkg_info_when_setup_py_is_computed(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "setup.py": "from setuptools import setup\nsetup(install_requires=compute())\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: x\nVersion: 1.0\nRequires-Dist: idna>=3\n"
                    "Provides-Extra: socks\nRequires-Dist: PySocks; extra == \"socks\"\n",
    })
    r = DependenciesAnalyzer().analyze(tmp_path)
    assert r.status == "ok", r.reason
    py = _by_name(r.data["python"])
    assert py["idna"]["source"] == "PKG-INFO" and py["PySocks"]["group"] == "socks"


def test_dependencies_unparseable_manifest_is_unknown(tmp_path: Path) -> None:
    write_tree(tmp_path, {"package.json": "{not json", "requirements.txt": "requests==2.32.3\n"})
    r = DependenciesAnalyzer().analyze(tmp_path)
    assert r.status == "unknown"
    assert "package.json" in r.reason
    assert r.data["python"][0]["name"] == "requests"  # what could be read is still there


def test_dependencies_none(tmp_path: Path) -> None:
    r = DependenciesAnalyzer().analyze(write_tree(tmp_path, {"main.c": "int main(){}\n"}))
    assert r.status == "skipped"


# -- tests ---------------------------------------------------------------------------

def test_tests_pytest_src_layout(project: Path) -> None:
    r = TestsAnalyzer().analyze(project)
    assert r.status == "ok"
    pytest_suite = next(s for s in r.data["suites"] if s["framework"] == "pytest")
    assert pytest_suite["path"] == "tests"
    assert pytest_suite["files"] == 1
    assert pytest_suite["pythonpath"] == "src"
    assert pytest_suite["config"] == "pyproject.toml"
    # pytest is configured: it runs as the project's people run it, its config choosing the paths
    assert r.data["command"] == ["python", "-m", "pytest"]
    frameworks = {s["framework"]: s for s in r.data["suites"]}
    assert frameworks["cargo"]["command"] == ["cargo", "test"]
    assert frameworks["go"]["command"] == ["go", "test", "./..."]
    assert frameworks["npm"]["command"] == ["npm", "test"]


def test_tests_unittest_only_and_flat_layout(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "mypkg/__init__.py": "",
        "test/test_a.py": "import unittest\n\nclass T(unittest.TestCase):\n"
                          "    def test_x(self):\n        self.assertTrue(True)\n",
    })
    r = TestsAnalyzer().analyze(tmp_path)
    assert r.data["framework"] == "unittest"
    assert r.data["command"] == ["python", "-m", "unittest", "discover", "-s", "test", "-t", "."]
    assert r.data["suites"][0]["alt_command"] == ["python", "-m", "pytest", "test"]
    assert "pythonpath" not in r.data


def test_tests_none_found(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "", "package.json":
                          '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'})
    r = TestsAnalyzer().analyze(tmp_path)
    assert r.status == "ok" and r.data["suites"] == [] and r.data["command"] is None


# -- licence -------------------------------------------------------------------------

def test_licence_mit_file_and_metadata_agree(project: Path) -> None:
    r = LicenceAnalyzer().analyze(project)
    assert r.status == "ok"
    assert r.data["spdx"] == "MIT"
    assert r.data["category"] == "permissive"
    assert r.data["agree"] is True
    assert r.data["files"] == [{"path": "LICENSE", "spdx": "MIT"}]


@pytest.mark.parametrize(("files", "spdx"), [
    ({"LICENSE.txt": BSD3_TEXT, "PKG-INFO": "Metadata-Version: 2.1\nName: x\n"
      "Classifier: License :: OSI Approved :: BSD License\n"}, "BSD-3-Clause"),
    ({"LICENSE": APACHE_NOTICE}, "Apache-2.0"),
    ({"COPYING": GPL3_HEADER, "setup.py": "from setuptools import setup\nsetup(classifiers=["
      "'License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)'])\n"},
     "GPL-3.0-or-later"),
    ({"LICENSE-MIT": MIT_TEXT, "LICENSE-APACHE": APACHE_NOTICE,
      "Cargo.toml": '[package]\nname="x"\nversion="1.0.0"\nlicense="MIT/Apache-2.0"\n'},
     "MIT OR Apache-2.0"),
    ({"package.json": '{"name": "x", "license": "ISC"}'}, "ISC"),
])
def test_licence_variants(tmp_path: Path, files: dict[str, str], spdx: str) -> None:
    r = LicenceAnalyzer().analyze(write_tree(tmp_path, files))
    assert r.status == "ok", r.reason
    assert r.data["spdx"] == spdx
    assert r.data["agree"] is True


def test_licence_disagreement_is_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, {"LICENSE": MIT_TEXT,
                          "pyproject.toml": '[project]\nname="x"\nlicense="Apache-2.0"\n'})
    r = LicenceAnalyzer().analyze(tmp_path)
    assert r.data["agree"] is False
    assert r.data["spdx"] == "MIT"  # the licence text wins
    assert "disagree" in r.reason
    assert [f.rule for f in r.findings] == ["licence-mismatch"]


def test_licence_family_only_is_not_an_spdx_id(tmp_path: Path) -> None:
    write_tree(tmp_path, {"PKG-INFO": "Metadata-Version: 2.1\nName: x\n"
                                      "Classifier: License :: OSI Approved :: BSD License\n"})
    r = LicenceAnalyzer().analyze(tmp_path)
    assert r.data["spdx"] is None and r.data["family"] == "BSD"
    assert r.data["category"] == "permissive"


def test_licence_missing_is_unknown(tmp_path: Path) -> None:
    r = LicenceAnalyzer().analyze(write_tree(tmp_path, {"main.py": "print(1)\n"}))
    assert r.status == "unknown"
    assert r.reason == "no licence file or metadata"
    assert r.data["spdx"] is None


def test_results_are_json_serialisable(project: Path) -> None:
    for analyzer in (LanguagesAnalyzer(), BuildSystemAnalyzer(), DependenciesAnalyzer(),
                     TestsAnalyzer(), LicenceAnalyzer()):
        json.dumps(analyzer.analyze(project).as_dict())


# -- hostile trees -------------------------------------------------------------------

def test_hostile_tree_fifo_symlinked_dir_and_deep_toml(tmp_path: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"requirements.txt": "stolen==1.0\n",
                                                "LICENSE": MIT_TEXT})
    tree = write_tree(tmp_path / "tree", {
        "pyproject.toml": "[project]\nname='x'\nx = " + "[" * 5000 + "]" * 5000 + "\n",
    })
    (tree / "requirements").symlink_to(outside, target_is_directory=True)
    (tree / "LICENSE").symlink_to(outside / "LICENSE")
    os.mkfifo(tree / "pipe.py")  # opening it for reading would block forever
    for analyzer in (LanguagesAnalyzer(), BuildSystemAnalyzer(), DependenciesAnalyzer(),
                     TestsAnalyzer(), LicenceAnalyzer()):
        result = analyzer.analyze(tree)
        assert "stolen" not in json.dumps(result.as_dict())
    deps = DependenciesAnalyzer().analyze(tree)
    assert deps.status == "unknown" and "pyproject.toml" in deps.reason
    assert LicenceAnalyzer().analyze(tree).status == "unknown"  # the symlinked LICENSE is not read
