"""What a dropped Python project declares it needs: ``noa_core.pyenv.declared``.

Each test writes one small project tree in one packaging style and reads it back with
:func:`read_declared`. Nothing is installed, nothing of the project runs (a ``setup.py``
that would write a file proves it), nothing leaves the tree (a hostile ``-r`` proves it).
The last test reads the real inflect 7.4.0 sdist from PyPI (``network``).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from noa_core.config import IngestLimits
from noa_core.intake import NetworkError, fetch_source, parse_source
from noa_core.manifest import PythonEnvConfig, parse_manifest
from noa_core.pyenv.declared import DeclaredRequirements, read_declared

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
         "python_version": "3.11", "python_full_version": "3.11.7"}


def project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def names(declared: DeclaredRequirements) -> list[str]:
    return [Requirement(r).name.lower().replace("_", "-") for r in declared.requirements]


def requirement(declared: DeclaredRequirements, name: str) -> Requirement:
    found = [Requirement(r) for r in declared.requirements if Requirement(r).name.lower() == name]
    assert len(found) == 1, (name, declared.requirements)
    return found[0]


def installed_on_linux(declared: DeclaredRequirements) -> list[str]:
    """What an installer would install here: the entries whose marker holds on Linux."""
    out = []
    for raw in declared.requirements:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate(LINUX):
            out.append(req.name.lower())
    return out


def has_note(declared: DeclaredRequirements, *words: str) -> bool:
    return any(all(w in note for w in words) for note in declared.notes)


# ---------------------------------------------------------------- lock files win, alone

UV_LOCK = '''
version = 1
revision = 2
requires-python = ">=3.9"

[[package]]
name = "demo"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "click" }]

[package.dev-dependencies]
test = [{ name = "pytest" }]

[[package]]
name = "click"
version = "8.1.7"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama", marker = "sys_platform == 'win32'" }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.3.3"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "iniconfig" },
    { name = "tomli", marker = "python_full_version < '3.11'" },
]

[[package]]
name = "iniconfig"
version = "2.0.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "tomli"
version = "2.0.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "private-tool"
version = "1.0"
source = { git = "https://example.invalid/private-tool.git?rev=abc#abc" }
'''


def test_uv_lock_is_used_alone_with_its_dev_groups_and_markers(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "uv.lock": UV_LOCK,
        "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1.0"\ndependencies = ["requests"]\n',
        "requirements-dev.txt": "black\n",
    })
    d = read_declared(tree)
    assert d.sources == ("uv.lock",)
    assert d.pinned is True
    assert d.requirements == (
        "click==8.1.7",
        'colorama==0.4.6; sys_platform == "win32"',
        "pytest==8.3.3",
        "iniconfig==2.0.0",
        'tomli==2.0.1; python_full_version < "3.11"',
    )
    assert "requests" not in names(d) and "black" not in names(d)   # the lock alone
    assert "demo" not in names(d)                                     # the project's own entry
    assert has_note(d, "private-tool", "git")
    assert installed_on_linux(d) == ["click", "pytest", "iniconfig"]
    assert d.project_name == "demo" and d.installable is True


def test_a_uv_package_needed_only_through_a_windows_package_keeps_a_windows_marker(tmp_path: Path) -> None:
    lock = UV_LOCK + '''
[[package]]
name = "pywin-helper"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
'''
    lock = lock.replace('name = "colorama"\nversion = "0.4.6"\nsource = { registry = "https://pypi.org/simple" }',
                        'name = "colorama"\nversion = "0.4.6"\nsource = { registry = "https://pypi.org/simple" }\n'
                        'dependencies = [{ name = "pywin-helper" }]')
    d = read_declared(project(tmp_path, {"uv.lock": lock}))
    helper = requirement(d, "pywin-helper")
    assert helper.marker is not None and not helper.marker.evaluate(LINUX)
    assert helper.marker.evaluate({**LINUX, "sys_platform": "win32"})


def test_poetry_lock_installs_every_group_keeping_markers(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "pyproject.toml": '''
            [tool.poetry]
            name = "demo-poetry"
            version = "1.0"
            [tool.poetry.dependencies]
            python = "^3.9"
            requests = "^2.31"
            [build-system]
            requires = ["poetry-core"]
            build-backend = "poetry.core.masonry.api"
            ''',
        "poetry.lock": '''
            [[package]]
            name = "requests"
            version = "2.32.3"
            optional = false
            python-versions = ">=3.8"
            groups = ["main"]
            files = []

            [[package]]
            name = "pytest"
            version = "8.3.3"
            optional = false
            python-versions = ">=3.8"
            groups = ["dev"]
            files = []

            [package.dependencies]
            colorama = {version = "*", markers = "sys_platform == \\"win32\\""}
            pywin32-ctypes = {version = ">=0.2", markers = "sys_platform == \\"win32\\""}

            [[package]]
            name = "colorama"
            version = "0.4.6"
            optional = false
            python-versions = "*"
            groups = ["dev"]
            markers = "sys_platform == \\"win32\\""
            files = []

            [[package]]
            name = "pywin32-ctypes"
            version = "0.2.3"
            optional = false
            python-versions = ">=3.6"
            files = []

            [[package]]
            name = "mylib"
            version = "0.1"
            optional = false
            python-versions = "*"
            files = []
            [package.source]
            type = "git"
            url = "https://example.invalid/mylib.git"
            reference = "main"
            resolved_reference = "abc"

            [metadata]
            lock-version = "2.1"
            python-versions = "^3.9"
            content-hash = "0"
            ''',
    })
    d = read_declared(tree)
    assert d.sources == ("poetry.lock",) and d.pinned is True
    assert names(d) == ["requests", "pytest", "colorama", "pywin32-ctypes"]
    assert installed_on_linux(d) == ["requests", "pytest"]   # old-style lock: marker taken from the edges
    assert has_note(d, "mylib", "git")
    assert SpecifierSet(d.python_requires or "") == SpecifierSet(">=3.9,<4.0")
    assert d.build_backend == "poetry.core.masonry.api" and d.build_requires == ("poetry-core",)


def test_pdm_lock_installs_all_groups(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pdm.lock": '''
        [metadata]
        groups = ["default", "test"]
        lock_version = "4.5.0"
        content_hash = "sha256:0"

        [[metadata.targets]]
        requires_python = ">=3.10"

        [[package]]
        name = "attrs"
        version = "24.2.0"
        groups = ["default"]
        files = []

        [[package]]
        name = "pytest"
        version = "8.3.3"
        groups = ["test"]
        dependencies = ["colorama; sys_platform == \\"win32\\"", "iniconfig"]
        files = []

        [[package]]
        name = "colorama"
        version = "0.4.6"
        groups = ["test"]
        marker = "sys_platform == \\"win32\\""
        files = []

        [[package]]
        name = "devtool"
        version = "0.0.1"
        path = "./devtool"
        editable = true
        '''})
    d = read_declared(tree)
    assert d.sources == ("pdm.lock",) and d.pinned is True
    assert d.requirements == ("attrs==24.2.0", "pytest==8.3.3", 'colorama==0.4.6; sys_platform == "win32"')
    assert d.python_requires == ">=3.10"
    assert has_note(d, "devtool", "local path")


def test_pipfile_lock_installs_default_and_develop(tmp_path: Path) -> None:
    lock = {
        "_meta": {"hash": {"sha256": "0"}, "pipfile-spec": 6, "requires": {"python_version": "3.11"}},
        "default": {"requests": {"hashes": ["sha256:0"], "index": "pypi", "version": "==2.32.3",
                                 "extras": ["socks"], "markers": "python_version >= '3.8'"}},
        "develop": {"pytest": {"hashes": [], "version": "==8.3.3"},
                    "colorama": {"hashes": [], "version": "==0.4.6", "markers": "sys_platform == 'win32'"},
                    "local": {"editable": True, "path": "."}},
    }
    d = read_declared(project(tmp_path, {"Pipfile.lock": json.dumps(lock)}))
    assert d.sources == ("Pipfile.lock",) and d.pinned is True
    assert d.requirements == ('requests[socks]==2.32.3; python_version >= "3.8"', "pytest==8.3.3",
                              'colorama==0.4.6; sys_platform == "win32"')
    assert has_note(d, "local", "not an exact index pin")


def test_requirement_files_of_exact_pins_are_a_lock(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "requirements.txt": """
            # pip-compile output
            click==8.1.7 \\
                --hash=sha256:ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28
            colorama==0.4.6 ; sys_platform == "win32"
            -e .
            """,
        "requirements-dev.txt": "-r requirements.txt\npytest==8.3.3\n",
        "pyproject.toml": '[project]\nname = "demo"\nversion = "1"\ndependencies = ["click>=7"]\n',
    })
    d = read_declared(tree)
    assert d.pinned is True
    assert d.sources == ("requirements.txt", "requirements-dev.txt")
    assert d.requirements == ("click==8.1.7", 'colorama==0.4.6; sys_platform == "win32"', "pytest==8.3.3")
    assert has_note(d, "-e .", "the project itself")


def test_a_requirement_file_that_is_not_all_pins_is_no_lock(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "requirements.txt": "click==8.1.7\n",
        "requirements-dev.txt": "pytest>=8\n",
    })
    d = read_declared(tree)
    assert d.pinned is False
    assert d.sources == ("requirements.txt", "requirements-dev.txt")
    assert names(d) == ["click", "pytest"]


# ---------------------------------------------------------------- pyproject styles

def test_hatch_dependency_groups_follow_include_group(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "Demo_Hatch"
        version = "1.0"
        requires-python = ">=3.9"
        dependencies = ["httpx>=0.27"]

        [dependency-groups]
        lint = ["ruff"]
        test = ["pytest>=8", {include-group = "coverage"}]
        coverage = ["coverage[toml]>=7"]
        dev = [{include-group = "test"}, {include-group = "lint"}]
        loop = [{include-group = "loop"}]
        '''})
    d = read_declared(tree)
    assert d.requirements == ("httpx>=0.27", "pytest>=8", "coverage[toml]>=7", "ruff")
    assert d.sources == ("pyproject.toml [project] dependencies", "pyproject.toml [dependency-groups] test",
                         "pyproject.toml [dependency-groups] dev")
    assert d.pinned is False
    assert d.project_name == "demo-hatch" and d.python_requires == ">=3.9"
    assert d.build_requires == ("hatchling",) and d.build_backend == "hatchling.build" and d.installable


def test_flit_optional_test_extra_and_self_reference(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [build-system]
        requires = ["flit_core >=3.2,<4"]
        build-backend = "flit_core.buildapi"

        [project]
        name = "demo_flit"
        dynamic = ["version", "description"]
        dependencies = ["attrs>=23"]

        [project.optional-dependencies]
        test = ["pytest", "demo-flit[speedups]", "Demo.Flit"]
        speedups = ["ujson"]
        doc = ["sphinx"]
        '''})
    d = read_declared(tree)
    assert names(d) == ["attrs", "pytest", "ujson"]      # the self-reference's extra is kept, docs are not
    assert d.sources == ("pyproject.toml [project] dependencies",
                         "pyproject.toml [project.optional-dependencies] test")
    assert has_note(d, "demo-flit[speedups]", "the project itself")
    assert Requirement(d.build_requires[0]).name == "flit_core" and d.build_backend == "flit_core.buildapi"


def test_poetry_caret_and_tilde_become_pep440(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [tool.poetry]
        name = "demo-poetry"
        version = "1.0"

        [tool.poetry.dependencies]
        python = "^3.9"
        requests = "^2.31"
        attrs = "~23.1"
        zerover = "^0.2.3"
        exact = "1.4.2"
        anything = "*"
        winonly = {version = "^1.0", markers = "sys_platform == 'win32'"}
        yaml-extra = {version = ">=6", optional = true}
        local = {path = "../local"}

        [tool.poetry.group.test.dependencies]
        pytest = "^8.0"

        [tool.poetry.group.docs.dependencies]
        sphinx = "*"

        [tool.poetry.dev-dependencies]
        black = "^24"

        [build-system]
        requires = ["poetry-core"]
        build-backend = "poetry.core.masonry.api"
        '''})
    d = read_declared(tree)
    spec = {r.name: r.specifier for r in map(Requirement, d.requirements)}
    assert spec["requests"] == SpecifierSet(">=2.31,<3.0")
    assert spec["attrs"] == SpecifierSet(">=23.1,<23.2")
    assert spec["zerover"] == SpecifierSet(">=0.2.3,<0.3.0")
    assert spec["exact"] == SpecifierSet("==1.4.2")
    assert spec["anything"] == SpecifierSet("")
    assert spec["pytest"] == SpecifierSet(">=8.0,<9.0")
    assert spec["black"] == SpecifierSet(">=24,<25")
    assert requirement(d, "winonly").marker == Marker("sys_platform == 'win32'")
    assert "python" not in spec and "sphinx" not in spec and "yaml-extra" not in spec and "local" not in spec
    assert has_note(d, "local", "path")
    assert SpecifierSet(d.python_requires or "") == SpecifierSet(">=3.9,<4.0")
    assert "pyproject.toml [tool.poetry.group.test.dependencies]" in d.sources


# ---------------------------------------------------------------- setuptools, read statically

def test_setup_cfg_and_requirements_test_txt_with_an_include(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "setup.cfg": """
            [metadata]
            name = demo-st

            [options]
            python_requires = >=3.8
            install_requires =
                requests>=2
                importlib-metadata; python_version < "3.10"
            tests_require = mock

            [options.extras_require]
            docs = sphinx
            testing =
                pytest>=7
            """,
        "requirements/test.txt": "-r base.txt\npytest-cov  # coverage\n-c constraints.txt\n-e .\n",
        "requirements/base.txt": "requests>=2\nidna\n",
        "requirements/docs.txt": "furo\n",
    })
    d = read_declared(tree)
    assert d.requirements == ('requests>=2', 'importlib-metadata; python_version < "3.10"', "pytest>=7", "mock",
                              "idna", "pytest-cov")
    assert d.sources == ("setup.cfg [options] install_requires", "setup.cfg [options.extras_require] testing",
                         "setup.cfg [options] tests_require", "requirements/test.txt",
                         "requirements/base.txt (-r from requirements/test.txt)")
    assert has_note(d, "constraints.txt") and has_note(d, "-e .")
    assert d.project_name == "demo-st" and d.python_requires == ">=3.8"
    assert d.build_requires == ("setuptools>=40.8.0", "wheel") and d.build_backend is None and d.installable


def test_static_setup_py_literals_and_module_names(tmp_path: Path) -> None:
    tree = project(tmp_path, {"setup.py": """
        from setuptools import find_packages, setup

        REQUIRES = ["requests>=2", "click"]
        TEST_REQUIRES = ["pytest"] + ["pytest-mock"]

        setup(
            name="demo-sp",
            python_requires=">=3.8",
            install_requires=REQUIRES,
            extras_require={"test": TEST_REQUIRES, "docs": ["sphinx"]},
            tests_require=("nose",),
            packages=find_packages(),
        )
        """})
    d = read_declared(tree)
    assert d.requirements == ("requests>=2", "click", "pytest", "pytest-mock", "nose")
    assert d.sources == ("setup.py install_requires (static)", "setup.py extras_require test (static)",
                         "setup.py tests_require (static)")
    assert d.project_name == "demo-sp" and d.python_requires == ">=3.8" and d.installable
    assert not has_note(d, "computes")


def test_computed_setup_py_is_noted_and_never_run(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "setup.py": """
            import pathlib
            pathlib.Path(__file__).with_name("PWNED").write_text("setup.py ran")
            from setuptools import setup

            def reqs():
                return open("requirements.txt").read().splitlines()

            setup(name="demo-computed", install_requires=reqs())
            """,
        "requirements.txt": "six\n",
    })
    d = read_declared(tree)
    assert has_note(d, "setup.py computes its requirements", "install_requires", "not executed")
    assert not (tree / "PWNED").exists()
    assert d.requirements == ("six",)                # nothing static: requirements.txt is the runtime list
    assert d.sources == ("requirements.txt",)
    assert d.project_name == "demo-computed"


def test_tox_ini_testenv_deps(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "tox.ini": """
            [tox]
            envlist = py311

            [base]
            deps = flake8

            [testenv]
            deps =
                pytest>=7
                -r{toxinidir}/requirements-ci.txt
                {[base]deps}
                py38: mock
            commands = pytest {posargs}
            """,
        "requirements-ci.txt": "hypothesis\n",
    })
    d = read_declared(tree)
    assert d.requirements == ("pytest>=7", "hypothesis")
    assert d.sources == ("tox.ini [testenv] deps", "tox.ini [testenv] deps -r requirements-ci.txt")
    assert has_note(d, "{[base]deps}", "substitution") and has_note(d, "py38: mock", "some tox environments")


# ---------------------------------------------------------------- noa.yaml, hostile input, bad lines

def test_noa_yaml_python_env_overrides_discovery(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "uv.lock": UV_LOCK,
        "pyproject.toml": '[project]\nname = "demo"\nversion = "1"\ndependencies = ["requests"]\n',
        "requirements/ci.txt": "pytest>=8\nfreezegun\n",
        "noa.yaml": """
            name: demo
            python_env:
              sources: [requirements/ci.txt, missing.txt]
              requirements: [pytest-asyncio]
            """,
    })
    manifest = parse_manifest((tree / "noa.yaml").read_text())
    d = read_declared(tree, manifest.python_env)
    assert d.requirements == ("pytest>=8", "freezegun", "pytest-asyncio")
    assert d.sources == ("requirements/ci.txt", "noa.yaml python_env.requirements")
    assert d.pinned is False
    assert has_note(d, "missing.txt", "not found")


def test_noa_yaml_extras_replace_the_name_heuristic(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [project]
        name = "demo"
        version = "1"
        [project.optional-dependencies]
        test = ["pytest"]
        integration = ["testcontainers"]
        '''})
    d = read_declared(tree, PythonEnvConfig(extras=["integration", "nope"]))
    assert d.requirements == ("testcontainers",)
    assert has_note(d, "'nope'", "not an extra")


def test_noa_yaml_can_point_at_a_lock(tmp_path: Path) -> None:
    tree = project(tmp_path, {"locks/uv.lock": UV_LOCK, "requirements-test.txt": "black\n"})
    d = read_declared(tree, PythonEnvConfig(sources=["locks/uv.lock"]))
    assert d.pinned is True and d.sources == ("locks/uv.lock",) and "black" not in names(d)


def test_hostile_includes_are_refused_with_a_note(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("evil-package\n")
    tree = project(tmp_path / "drop", {
        "requirements-test.txt": """
            -r ../../etc/passwd
            -r /etc/passwd
            -r link.txt
            -r linked-dir/more.txt
            pytest
            """,
    })
    os.symlink(outside, tree / "link.txt")
    os.symlink(tmp_path, tree / "linked-dir")
    (tmp_path / "more.txt").write_text("evil-two\n")
    d = read_declared(tree)
    assert d.requirements == ("pytest",)
    assert has_note(d, "../../etc/passwd", "leaves the project tree")
    assert has_note(d, "/etc/passwd", "leaves the project tree")
    assert has_note(d, "link.txt", "symbolic link")
    assert has_note(d, "linked-dir/more.txt", "symbolic link")


def test_a_symlinked_declaration_file_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text('[project]\nname = "x"\ndependencies = ["evil"]\n')
    tree = tmp_path / "drop"
    tree.mkdir()
    os.symlink(tmp_path / "elsewhere.toml", tree / "pyproject.toml")
    os.symlink(tmp_path / "elsewhere.toml", tree / "requirements-dev.txt")
    d = read_declared(tree)
    assert d.requirements == () and not d.installable


def test_invalid_lines_become_notes_never_exceptions(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "pyproject.toml": '[project]\nname = "demo"\nversion = "1"\ndependencies = ["ok>=1", "not a req !!", 3]\n'
                          '[build-system]\nrequires = ["setuptools", "bad req ("]\n',
        "requirements-dev.txt": "pytest\n--index-url https://user:secret@mirror.invalid/simple\n"
                                "git+https://example.invalid/x.git\n${TOKEN}/pkg\nname @ https://x.invalid/n.whl\n",
        "setup.py": "this is not python (",
        "tox.ini": "[testenv\ndeps = x",
        "poetry.lock": "not = [toml",
    })
    d = read_declared(tree)
    assert d.requirements == ("ok>=1", "pytest")
    assert d.build_requires == ("setuptools",)
    assert has_note(d, "not a req !!", "not a valid requirement")
    assert has_note(d, "poetry.lock", "not valid TOML")
    assert has_note(d, "setup.py", "cannot be parsed")
    assert has_note(d, "tox.ini", "not a valid INI")
    assert has_note(d, "git+https://example.invalid/x.git", "local path or URL")
    assert has_note(d, "--index-url", "ignored")
    assert not any("secret" in n for n in d.notes)        # an index URL's credentials never reach a note
    assert has_note(d, "name @", "URL")


def test_an_empty_tree_declares_nothing(tmp_path: Path) -> None:
    d = read_declared(tmp_path)
    assert d == DeclaredRequirements(requirements=(), pinned=False, sources=(), python_requires=None,
                                     build_requires=("setuptools>=40.8.0", "wheel"), build_backend=None,
                                     installable=False, project_name=None, notes=())
    with pytest.raises(NotADirectoryError):
        read_declared(tmp_path / "missing")


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    tree = project(tmp_path, {"requirements-test.txt": "pytest\n" + "# padding\n" * 200_000})
    d = read_declared(tree)
    assert d.requirements == () and has_note(d, "requirements-test.txt", "larger than")


# ---------------------------------------------------------------- a real sdist

@pytest.mark.network
def test_real_inflect_sdist_declares_its_test_dependencies(tmp_path: Path) -> None:
    try:
        fetched = fetch_source(parse_source("pypi:inflect==7.4.0"), tmp_path / "inflect",
                               IngestLimits(fetch_timeout_s=120), cache_dir=None)
    except NetworkError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PyPI not reachable: {exc}")
    d = read_declared(fetched.tree)
    assert {"pytest", "pygments", "more-itertools", "typeguard"} <= set(names(d))
    assert "sphinx" not in names(d)
    assert d.sources == ("pyproject.toml [project] dependencies",
                         "pyproject.toml [project.optional-dependencies] test")
    assert d.project_name == "inflect" and d.python_requires == ">=3.8" and d.installable
    assert d.build_backend == "setuptools.build_meta" and d.pinned is False


def test_hatch_test_environments_and_their_features(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "demo"
        version = "1"
        [project.optional-dependencies]
        speed = ["orjson"]
        [tool.hatch.envs.default]
        dependencies = ["pytest", "coverage[toml]"]
        features = ["speed"]
        [tool.hatch.envs.docs]
        dependencies = ["mkdocs"]
        '''})
    d = read_declared(tree)
    assert names(d) == ["pytest", "coverage", "orjson"]
    assert d.sources == ("pyproject.toml [tool.hatch.envs.default] dependencies",)


def test_setup_py_extras_with_a_marker_key_keep_the_marker(tmp_path: Path) -> None:
    tree = project(tmp_path, {"setup.py": """
        from setuptools import setup
        setup(name="demo", extras_require={"test": ["pytest"], "test:sys_platform == 'win32'": ["pywin32"]})
        """})
    d = read_declared(tree)
    assert installed_on_linux(d) == ["pytest"] and "pywin32" in names(d)


def test_credentials_in_urls_never_reach_a_note(tmp_path: Path) -> None:
    tree = project(tmp_path, {"requirements-dev.txt": """
        --index-url=https://user:s3cret@mirror.invalid/simple
        --extra-index-url https://user:s3cret@mirror.invalid/simple
        git+https://oauth2:s3cret@git.invalid/x.git#egg=x
        pkg @ https://files.invalid/pkg.whl?token=s3cret
        -r https://user:s3cret@evil.invalid/more.txt
        pytest
        """})
    d = read_declared(tree)
    assert d.requirements == ("pytest",)
    assert len(d.notes) >= 4 and not any("s3cret" in n for n in d.notes), d.notes


def test_a_setup_cfg_with_only_tool_settings_is_not_a_package(tmp_path: Path) -> None:
    d = read_declared(project(tmp_path, {"setup.cfg": "[flake8]\nmax-line-length = 100\n"}))
    assert d.installable is False


def test_pip_tools_style_requirement_dir_without_docs_or_minimum_pins(tmp_path: Path) -> None:
    tree = project(tmp_path, {
        "requirements/tests.txt": "pytest==8.3.3\nblinker==1.8.2\n",
        "requirements/tests-min.txt": "blinker==1.6.2\n",
        "requirements/docs.txt": "sphinx==8.0.0\n",
        "requirements/dev.txt": "-r tests.txt\npre-commit==3.8.0\nblinker==1.7.0\n",
    })
    d = read_declared(tree)
    assert d.pinned is True
    assert d.requirements == ("pytest==8.3.3", "blinker==1.8.2", "pre-commit==3.8.0")
    assert d.sources == ("requirements/dev.txt", "requirements/tests.txt (-r from requirements/dev.txt)")
    assert "sphinx" not in names(d)
    assert has_note(d, "blinker==1.7.0", "conflicts with the earlier pin")


def test_pinned_requirement_files_that_leave_out_the_projects_own_dependencies_get_them_added(
        tmp_path: Path) -> None:
    # pip-compile'd test requirements (Flask style): the project is installed without its dependencies,
    # so what pyproject declares and the pins do not cover is added, and the set is no longer a full lock.
    tree = project(tmp_path, {
        "pyproject.toml": '[project]\nname = "demo"\nversion = "1"\ndependencies = ["werkzeug>=3", "pytest"]\n',
        "requirements/tests.txt": "pytest==8.3.3\n",
    })
    d = read_declared(tree)
    assert d.requirements == ("pytest==8.3.3", "werkzeug>=3")
    assert d.sources == ("requirements/tests.txt", "pyproject.toml [project] dependencies")
    assert d.pinned is False
    assert has_note(d, "leave out 1 of the project's own dependencies")


def test_a_dependency_group_cycle_is_noted_not_followed_forever(tmp_path: Path) -> None:
    tree = project(tmp_path, {"pyproject.toml": '''
        [dependency-groups]
        test = ["pytest", {include-group = "more"}]
        more = ["hypothesis", {include-group = "test"}]
        '''})
    d = read_declared(tree)
    assert d.requirements == ("pytest", "hypothesis")
    assert has_note(d, "cycle")


def test_requirement_files_kept_per_python_version_only_the_fitting_one_is_read(tmp_path: Path) -> None:
    # wcwidth 0.2.13 ships pip-compiled pins per Python (coverage 5.5 for 3.6/3.7 has no wheel for 3.11)
    tree = project(tmp_path, {
        "setup.py": "from setuptools import setup\nsetup(name='wide', version='1')\n",
        "requirements-tests36.txt": "coverage[toml]==5.5\npytest==6.2.5\n",
        "requirements-tests37.txt": "coverage[toml]==5.5\npytest==7.0.1\n",
        "requirements-tests39.txt": "coverage[toml]==7.4.0\npytest==8.0.0\n",
        "requirements-develop.txt": "pytest-cov==4.1.0\n",
    })
    on_311 = read_declared(tree, python=(3, 11))
    assert sorted(on_311.requirements) == ["coverage[toml]==7.4.0", "pytest-cov==4.1.0", "pytest==8.0.0"]
    assert has_note(on_311, "requirements-tests36.txt", "kept for Python 3.6", "this environment: 3.11")
    assert not any("requirements-tests39.txt" in n for n in on_311.notes)
    on_37 = read_declared(tree, python=(3, 7))
    assert "pytest==7.0.1" in on_37.requirements and "pytest==8.0.0" not in on_37.requirements


def test_a_requirement_file_for_a_newer_python_only_is_not_read(tmp_path: Path) -> None:
    tree = project(tmp_path, {"requirements-test-py313.txt": "pytest==9.0.0\n", "requirements-dev.txt": "pytest\n"})
    d = read_declared(tree, python=(3, 11))
    assert d.requirements == ("pytest",) and has_note(d, "requirements-test-py313.txt", "kept for Python 3.13")
