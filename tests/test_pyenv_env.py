"""A dropped Python project is tested in its own environment: its declared dependencies, built
from wheels inside the sandbox without network, with none of NOA's packages.

These tests resolve and download real wheels from the package index (PyPI), so they need it
reachable (marker ``network``); everything after the download runs offline in bubblewrap.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from noa_core.config import ExecLimits
from noa_core.pyenv.provider import EnvChoice, PyenvLayout, prepare_python_env
from noa_core.validation import run_test_suite

pytestmark = pytest.mark.network
LIMITS = ExecLimits(cpu_seconds=180, wall_seconds=180)


def _project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def _run(tree: Path, home: Path, env: EnvChoice) -> object:
    return run_test_suite(tree, ["python", "-m", "pytest", "-q"], work_parent=home / "work", limits=LIMITS,
                          python_env=env, hide_paths=(str(home),))


PINNED_OLD_PYDANTIC = {
    "pyproject.toml": """
        [project]
        name = "oldstyle"
        version = "0.1"
        dependencies = ["pydantic<2"]
        [project.optional-dependencies]
        test = ["pytest"]
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
    """,
    "oldstyle/__init__.py": """
        import importlib.metadata
        from pydantic import BaseModel
        __version__ = importlib.metadata.version("oldstyle")

        class Point(BaseModel):
            x: int
    """,
    "tests/test_env.py": """
        import importlib.util
        import pydantic
        import oldstyle

        def test_its_own_pinned_pydantic():
            assert pydantic.VERSION.startswith("1."), pydantic.VERSION

        def test_project_is_installed_with_metadata():
            assert oldstyle.__version__ == "0.1"
            assert oldstyle.Point(x="3").x == 3  # pydantic 1 coerces

        def test_nothing_of_noa_is_importable():
            for name in ("noa_core", "prefect", "flows", "typer"):
                assert importlib.util.find_spec(name) is None, name

        def test_its_environment_is_read_only(tmp_path):
            import os, site
            target = os.path.join(site.getsitepackages()[0], "written-by-the-drop")
            try:
                open(target, "w").close()
            except OSError:
                return
            raise AssertionError("the project wrote into its own environment")
    """,
}


def test_a_project_pinned_below_noas_pydantic_is_tested_with_its_own(tmp_path: Path) -> None:
    tree = _project(tmp_path / "oldstyle", PINNED_OLD_PYDANTIC)
    home = tmp_path / "home"
    env = prepare_python_env(tree, home=home, limits=LIMITS, hide_paths=(str(home),))
    assert env.status == "ready", env.reason
    assert env.env is not None and any(p.startswith("pydantic==1.") for p in env.env.packages)
    assert env.site is not None  # the project itself was built and installed beside the environment
    assert "pyproject.toml [project] dependencies" in " ".join(env.sources)
    run = _run(tree, home, env)
    assert run.outcome == "passed", run.log_path.read_text()[-2000:]
    assert run.counts is not None and run.counts.passed == 4
    assert str(env.env.python) == run.command[0]


def test_a_second_prepare_reuses_the_environment_and_the_project_build(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOA_PYENV_CACHE")  # this home's own cache: NOA_HOME/pyenv
    tree = _project(tmp_path / "oldstyle", PINNED_OLD_PYDANTIC)
    home = tmp_path / "home"
    first = prepare_python_env(tree, home=home, limits=LIMITS)
    second = prepare_python_env(tree, home=home, limits=LIMITS)
    assert first.ready and second.ready
    assert second.env is not None and second.env.reused and second.env.key == first.env.key  # type: ignore[union-attr]
    assert second.site == first.site
    assert "resolve" in second.timings and "install" in second.timings and second.timings["install"] == 0.0
    layout = PyenvLayout.for_home(home)
    assert layout.root == (home / "pyenv").resolve()
    assert [p.name for p in layout.envs.iterdir() if not p.name.startswith(".")] == [first.env.key]  # type: ignore[union-attr]


def test_requirements_that_do_not_resolve_give_unknown_and_nothing_runs(tmp_path: Path) -> None:
    tree = _project(tmp_path / "broken", {
        "pyproject.toml": """
            [project]
            name = "broken"
            version = "0.1"
            dependencies = ["this-package-does-not-exist-noa-test==1.0"]
        """,
        "tests/test_x.py": "def test_x():\n    assert True\n",
    })
    home = tmp_path / "home"
    env = prepare_python_env(tree, home=home, limits=LIMITS)
    assert env.status == "unknown"
    assert "do not resolve" in env.reason and "this-package-does-not-exist-noa-test" in env.reason
    run = _run(tree, home, env)
    assert run.outcome == "unknown" and run.counts is None
    assert "this-package-does-not-exist-noa-test" in run.notes[0]


def test_a_python_the_project_does_not_support_gives_unknown(tmp_path: Path) -> None:
    tree = _project(tmp_path / "future", {
        "pyproject.toml": """
            [project]
            name = "future"
            version = "0.1"
            requires-python = ">=3.99"
        """,
    })
    env = prepare_python_env(tree, home=tmp_path / "home", limits=LIMITS)
    assert env.status == "unknown" and "requires Python >=3.99" in env.reason


def test_the_project_build_has_no_network(tmp_path: Path) -> None:
    """A setup.py that phones home fails inside the sandbox: nothing reaches the listener."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    tree = _project(tmp_path / "phonehome", {
        "setup.py": f"""
            import socket
            from setuptools import setup
            socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"leak")
            setup(name="phonehome", version="0.1", py_modules=[])
        """,
        "tests/test_x.py": "def test_x():\n    assert True\n",
    })
    try:
        env = prepare_python_env(tree, home=tmp_path / "home", limits=LIMITS)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # a connection, even one closed since, would be waiting here
    finally:
        listener.close()
    assert env.status == "unknown"
    assert "building the project failed" in env.reason
    assert "Network is unreachable" in env.reason or "Errno" in env.reason


def test_the_build_stage_builds_in_the_projects_environment_with_its_own_build_backend(tmp_path: Path) -> None:
    """flit_core is not among NOA's packages: the build can only succeed from the project's wheelhouse."""
    import importlib.util

    from noa_core.build import build_project
    from noa_core.manifest import NoaManifest

    assert importlib.util.find_spec("flit_core") is None
    tree = _project(tmp_path / "flitty", {
        "pyproject.toml": """
            [build-system]
            requires = ["flit_core>=3.4,<4"]
            build-backend = "flit_core.buildapi"
            [project]
            name = "flitty"
            version = "0.2"
            description = "flit-built"
        """,
        "flitty/__init__.py": '"""flitty."""\n',
    })
    home = tmp_path / "home"
    env = prepare_python_env(tree, home=home, limits=LIMITS, test_runner=None)
    assert env.ready, env.reason
    result = build_project(tree, NoaManifest(name="flitty"), tmp_path / "out", LIMITS, python_env=env,
                           hide_paths=(str(home),))
    assert result.status == "ok", result.reason
    assert sorted(a.name for a in result.artifacts) == ["flitty-0.2-py2.py3-none-any.whl", "flitty-0.2.tar.gz"] or \
        sorted(a.name for a in result.artifacts) == ["flitty-0.2-py3-none-any.whl", "flitty-0.2.tar.gz"]
    assert result.steps[0].tool == "uv-build" and "project's environment" in result.steps[0].reason


def test_a_dependency_published_only_as_an_sdist_is_built_in_the_sandbox(tmp_path: Path) -> None:
    """docopt 0.6.2 has no wheel on PyPI: its sdist is built offline in bubblewrap, then installed."""
    tree = _project(tmp_path / "usesdocopt", {
        "pyproject.toml": """
            [project]
            name = "usesdocopt"
            version = "0.1"
            dependencies = ["docopt==0.6.2"]
        """,
        "tests/test_cli.py": """
            import docopt

            def test_parses():
                assert docopt.docopt("Usage: prog [--verbose]", argv=["--verbose"])["--verbose"] is True
        """,
    })
    home = tmp_path / "home"
    env = prepare_python_env(tree, home=home, limits=LIMITS, hide_paths=(str(home),))
    assert env.ready, env.reason
    assert "docopt==0.6.2" in env.env.packages  # type: ignore[union-attr]
    assert any("built docopt from its sdist in the sandbox" in n for n in env.notes) or \
        any(p.name.startswith("docopt-0.6.2-") for p in PyenvLayout.for_home(home).built.glob("*.whl"))
    run = _run(tree, home, env)
    assert run.outcome == "passed" and run.counts is not None and run.counts.passed == 1
