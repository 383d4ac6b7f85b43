"""The example plugin in examples/noa-plugin-todos, installed with pip like a third-party
package, extends NOA through both entry-point groups: an analyzer and an API route."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server_helpers import bearer, settings_for, tokens

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "examples" / "noa-plugin-todos"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / PLUGIN_DIR.name  # setuptools writes build/ next to the source
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert list(target.glob("noa_plugin_todos-0.1.0.dist-info"))
    return target


@pytest.fixture()
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))


def test_the_plugin_analyzer_joins_the_analysis(on_path: None, tmp_path: Path) -> None:
    from noa_core.analysis.registry import load_plugin_analyzers

    tree = tmp_path / "project"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "a.py").write_text("# TODO: one\nx = 1  # FIXME two\n# TODO three\n")
    (tree / "README.md").write_text("No markers here.\n")
    analyzers = {a.name: a for a in load_plugin_analyzers()}
    assert "todos" in analyzers
    result = analyzers["todos"].analyze(tree)
    assert result.status == "ok"
    assert result.data["counts"] == {"TODO": 2, "FIXME": 1, "XXX": 0}
    assert result.data["top_files"] == [{"path": "src/a.py", "markers": 3}]


def test_the_plugin_route_is_served_behind_the_api_tokens(on_path: None, tmp_path: Path) -> None:
    from noa_core.server.app import create_app

    app = create_app(settings_for(tmp_path), record_change=None, schedule_backup=None, prefect_events=False)
    toks = tokens(app)
    with TestClient(app) as client:
        assert client.get("/health").json()["plugins"]["todos"] == "ok"
        assert client.get("/plugins/todos/markers").status_code == 401
        r = client.get("/plugins/todos/markers", headers=bearer(toks["read"]))
        assert r.status_code == 200 and r.json()["markers"] == ["TODO", "FIXME", "XXX"]


SITE_MANIFEST = """name: docs
version: "{version}"
language: other
run:
  command: [static]   # the plugin's target serves public/ itself
  health:
    path: /index.html
"""


def make_site(parent: Path, version: str) -> Path:
    site = parent / f"docs-{version}"
    (site / "public").mkdir(parents=True)
    (site / "public" / "index.html").write_text(f"<h1>docs {version}</h1>\n")
    (site / "noa.yaml").write_text(SITE_MANIFEST.format(version=version))
    return site


def test_the_plugin_deploy_target_ships_a_static_site_blue_green_through_caddy(on_path: None, tmp_path: Path) -> None:
    from deploy_helpers import body_of, cleanup_home, deploy

    from noa_core.deploy.run import plugin_targets
    from noa_core.errors import BadInput

    assert "static" in plugin_targets()
    home = tmp_path / "home"
    try:
        first = deploy(home, make_site(tmp_path, "1.0"), "staging", target="static")
        assert first["outcome"] == "promoted", first
        url = f"http://{first['endpoint']}/"
        assert body_of(url) == "<h1>docs 1.0</h1>\n"
        second = deploy(home, make_site(tmp_path, "2.0"), "staging", target="static")
        assert second["outcome"] == "promoted" and second["strategy"] == "blue-green"
        assert body_of(url) == "<h1>docs 2.0</h1>\n"
        with pytest.raises(BadInput, match=r"unknown deploy target 'ftp' \(local, docker, kubernetes, static\)"):
            deploy(home, make_site(tmp_path, "3.0"), "staging", target="ftp")
    finally:
        cleanup_home(home)
