"""The workspace dependency graph: projects from manifests (Python, Rust, Go, JavaScript) and
Python imports; GraphML, JSON and a rendered image."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from noa_core.workspace.deps import build_graph, markdown, write_graph

def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


WORKSPACE = {
    "core/pyproject.toml": '[project]\nname = "acme-core"\nversion = "1.0"\ndependencies = ["requests>=2"]\n',
    "core/src/acme_core/__init__.py": "import requests\n",
    "api/pyproject.toml": '[project]\nname = "acme-api"\ndependencies = ["acme_core", "fastapi"]\n',
    "api/acme_api/__init__.py": "from acme_core import thing\nimport json, os\n",
    "cli/setup.py": "from setuptools import setup\nsetup(name='acme-cli', install_requires=['click'])\n",
    "cli/acme_cli.py": "import acme_api\nfrom acme_core.sub import x\nfrom . import rel\n",
    "cli/tests/package.json": '{"name": "fixture-not-a-project"}',
    "engine/Cargo.toml": '[package]\nname = "engine"\nversion = "0.1.0"\n[dependencies]\nserde = "1"\n',
    "svc/go.mod": "module example.com/svc\n\ngo 1.21\n\nrequire (\n\tgithub.com/google/uuid v1.6.0\n)\n",
    "web/package.json": '{"name": "web", "dependencies": {"left-pad": "^1.3.0"}}',
    "web/node_modules/left-pad/package.json": '{"name": "left-pad"}',
}


def test_projects_edges_from_manifests_and_imports(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", WORKSPACE)
    g = build_graph(root)
    projects = {g.nodes[n]["name"]: n for n in g.nodes if g.nodes[n]["kind"] == "project"}
    assert set(projects) == {"acme-core", "acme-api", "acme-cli", "engine", "example.com/svc", "web"}
    api, core, cli = projects["acme-api"], projects["acme-core"], projects["acme-cli"]
    assert g.edges[api, core]["via"] == "manifest+import" and g.edges[api, core]["declared"]
    assert g.edges[cli, api]["via"] == "import" and not g.edges[cli, api]["declared"]  # imported, not declared
    assert g.has_edge(cli, core)
    assert g.has_edge(core, "pypi:requests") and g.has_edge(api, "pypi:fastapi") and g.has_edge(cli, "pypi:click")
    assert g.has_edge(projects["engine"], "crates:serde")
    assert g.has_edge(projects["example.com/svc"], "go:github.com/google/uuid")
    assert g.has_edge(projects["web"], "npm:left-pad")
    assert not g.has_edge(api, "pypi:json")                 # stdlib imports are not dependencies
    assert "acme-cli" in markdown(g) and "| acme-api | api | python | acme-core |" in markdown(g)


def test_graph_files_graphml_json_and_image(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", WORKSPACE)
    files = write_graph(build_graph(root), tmp_path / "out", image="svg")
    assert nx.read_graphml(files["graphml"]).number_of_nodes() == 12
    doc = json.loads(Path(files["json"]).read_text())
    assert doc["projects"] == 6 and doc["internal_edges"] == 3
    svg = Path(files["image"]).read_text()
    assert svg.startswith("<svg") and "acme-api" in svg


def test_cli_graph_json(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from noa_core.cli.workspace_cmd import register

    root = write(tmp_path / "ws", WORKSPACE)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["workspace", "graph", str(root), "--home", str(tmp_path / "home"), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["projects"] == 6 and Path(doc["files"]["graphml"]).is_file()
    assert doc["files"]["image"].endswith("deps.svg")
    bad = CliRunner().invoke(app, ["workspace", "graph", str(root), "--image", "gif"])
    assert bad.exit_code == 2 and "noa: error:" in bad.stderr
