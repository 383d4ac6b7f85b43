"""The dependency graph of every project in the workspace, from manifests and Python imports.

A project is a directory holding a manifest (pyproject.toml, setup.py, setup.cfg,
requirements*.txt, Cargo.toml, go.mod, package.json). Declared dependencies come from
:mod:`noa_core.analysis.dependencies` (nothing is executed); Python imports are read
line by line (``import x`` / ``from x import``; relative imports ignored). A dependency
or an import that names another project of the workspace becomes an edge between the
two projects; other declared dependencies point at external nodes (``pypi:requests``,
``npm:left-pad``, ``crates:serde``, ``go:golang.org/x/net``).

Returns a ``networkx.DiGraph`` (edges: dependent -> dependency) with plain attributes,
writable as GraphML and node-link JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from noa_core.sourcetree import safe_fs
from noa_core.analysis import _manifests as m
from noa_core.analysis.dependencies import collect_go, collect_javascript, collect_rust
from noa_core.analysis.python_dependencies import collect_python

MANIFESTS = ("pyproject.toml", "setup.py", "setup.cfg", "Cargo.toml", "go.mod", "package.json")
SKIP_PROJECT_DIRS = safe_fs.VENDORED_DIRS | {"tests", "test", "docs", "examples", "testing"}
NOT_MODULES = frozenset({"setup", "conftest", "noxfile", "fabfile", "tasks", "manage", "__init__"})
MAX_PY_BYTES = 1024 * 1024
_IMPORT = re.compile(rb"^[ \t]*(?:from[ \t]+([A-Za-z_][\w.]*)[ \t]+import\b|import[ \t]+([A-Za-z_][\w., \t]*))",
                     re.MULTILINE)
_REQ_FILE = re.compile(r"^[\w.-]*requirements[\w.-]*\.txt$", re.IGNORECASE)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Project:
    key: str           # node id: "project:<name>"
    name: str
    path: str          # relative to the workspace root
    ecosystems: list[str] = field(default_factory=list)
    version: str | None = None
    provides: set[str] = field(default_factory=set)       # top-level Python import names
    deps: list[dict[str, Any]] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def find_projects(listing: safe_fs.Listing) -> list[str]:
    """Relative directories ("" = the root) that hold a manifest, outside vendored and test trees."""
    dirs: set[str] = set()
    for f in listing.files:
        if f.vendored:
            continue
        p = PurePosixPath(f.rel)
        name = p.name
        if name in MANIFESTS or (_REQ_FILE.match(name) and len(p.parts) == 1):
            parent = "" if len(p.parts) == 1 else str(p.parent)
            if not set(PurePosixPath(parent).parts) & SKIP_PROJECT_DIRS:
                dirs.add(parent)
    return sorted(dirs)


def _sub_listing(listing: safe_fs.Listing, rel: str, nested: list[str]) -> safe_fs.Listing:
    prefix = f"{rel}/" if rel else ""
    inner = [n + "/" for n in nested if n != rel and (not rel or n.startswith(prefix))]
    files = tuple(safe_fs.FileEntry(rel=f.rel[len(prefix):], size=f.size, vendored=f.vendored)
                  for f in listing.files
                  if f.rel.startswith(prefix) and not any(f.rel.startswith(n) for n in inner))
    return safe_fs.Listing(root=listing.root / rel if rel else listing.root, files=files, symlinks_skipped=0,
                       special_skipped=0, truncated=listing.truncated)


def _name_version(tree: Path, fallback: str) -> tuple[str, str | None, list[str]]:
    problems: list[str] = []
    candidates: list[tuple[str | None, str | None]] = []
    try:
        if m.exists(tree, "pyproject.toml"):
            doc = m.load_toml(tree, "pyproject.toml")
            project = m.table(doc, "project")
            poetry = m.table(doc, "tool", "poetry")
            candidates.append((project.get("name"), project.get("version")))
            candidates.append((poetry.get("name"), poetry.get("version")))
        if m.exists(tree, "setup.cfg"):
            cfg = m.load_ini(tree, "setup.cfg")
            if cfg.has_section("metadata"):
                candidates.append((cfg.get("metadata", "name", fallback=None),
                                   cfg.get("metadata", "version", fallback=None)))
        if m.exists(tree, "PKG-INFO"):
            info = m.load_pkg_info(tree)
            candidates.append((info.get("Name"), info.get("Version")))
        if m.exists(tree, "setup.py"):
            call = m.parse_setup_py(tree)
            candidates.append((call.kwargs.get("name"), call.kwargs.get("version")))
        if m.exists(tree, "Cargo.toml"):
            pkg = m.table(m.load_toml(tree, "Cargo.toml"), "package")
            candidates.append((pkg.get("name"), pkg.get("version") if isinstance(pkg.get("version"), str) else None))
        if m.exists(tree, "package.json"):
            pkg = m.load_json(tree, "package.json")
            if isinstance(pkg, dict):
                candidates.append((pkg.get("name"), pkg.get("version")))
        if m.exists(tree, "go.mod"):
            for line in m.read(tree, "go.mod").splitlines():
                if line.startswith("module "):
                    candidates.append((line.split()[1].strip('"'), None))
                    break
    except (m.ManifestError, OSError) as exc:
        problems.append(str(exc))
    for name, version in candidates:
        if isinstance(name, str) and name.strip():
            return name.strip(), version if isinstance(version, str) else None, problems
    return fallback, None, problems


def _provides(files: Iterable[safe_fs.FileEntry]) -> set[str]:
    names: set[str] = set()
    for f in files:
        parts = PurePosixPath(f.rel).parts
        if parts and parts[0] == "src":
            parts = parts[1:]
        if len(parts) == 2 and parts[1] == "__init__.py" and parts[0].isidentifier():
            names.add(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py") and parts[0][:-3].isidentifier() \
                and parts[0][:-3] not in NOT_MODULES:
            names.add(parts[0][:-3])
    return names


def _imports(tree: Path, files: Iterable[safe_fs.FileEntry]) -> set[str]:
    found: set[str] = set()
    for f in files:
        if not f.rel.endswith(".py") or f.vendored or f.size > MAX_PY_BYTES:
            continue
        try:
            data = safe_fs.read_bytes(tree, f.rel, MAX_PY_BYTES)
        except (OSError, ValueError):
            continue
        for match in _IMPORT.finditer(data):
            if match.group(1):
                found.add(match.group(1).split(b".")[0].decode("ascii", "replace"))
            else:
                for part in match.group(2).split(b","):
                    word = part.strip().split()
                    if word:
                        found.add(word[0].split(b".")[0].decode("ascii", "replace"))
    return {n for n in found if n.isidentifier()}


def _walk(root: Path, skip: set[str]) -> safe_fs.Listing:
    """Like :func:`noa_core.sourcetree.safe_fs.walk`, but vendored trees, caches and ``skip`` are not entered."""
    files: list[safe_fs.FileEntry] = []
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    pruned = safe_fs.IGNORED_DIRS | safe_fs.VENDORED_DIRS | {"node_modules", "target", ".noa"}
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in pruned and entry.path not in skip:
                        stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    files.append(safe_fs.FileEntry(rel=prefix + entry.name, size=entry.stat(follow_symlinks=False).st_size,
                                               vendored=False))
            except OSError:
                continue
    files.sort(key=lambda f: f.rel)
    return safe_fs.Listing(root=root, files=tuple(files), symlinks_skipped=0, special_skipped=0, truncated=False)


def collect_projects(root: Path, *, skip: Iterable[str] = ()) -> list[Project]:
    listing = _walk(root, set(skip))
    rels = find_projects(listing)
    projects: list[Project] = []
    used: set[str] = set()
    for rel in rels:
        tree = root / rel if rel else root
        sub = _sub_listing(listing, rel, rels)
        name, version, problems = _name_version(tree, (rel.rsplit("/", 1)[-1] if rel else root.name) or "root")
        key = f"project:{name}"
        if key in used:  # two copies of one project (e.g. duplicates): keep both, tell them apart
            key = f"project:{name}@{rel or '.'}"
        used.add(key)
        project = Project(key=key, name=name, path=rel or ".", version=version, problems=problems)
        for ecosystem, collected in (("python", collect_python(tree, sub)), ("javascript", collect_javascript(tree)),
                                     ("rust", collect_rust(tree)), ("go", collect_go(tree))):
            if collected.manifests or collected.deps:
                project.ecosystems.append(ecosystem)
            for dep in collected.deps:
                project.deps.append({**dep, "ecosystem": ecosystem})
            project.problems.extend(collected.problems)
        project.provides = _provides(sub.files)
        project.imports = _imports(tree, sub.files) - project.provides
        if not project.ecosystems and project.provides:
            project.ecosystems.append("python")
        projects.append(project)
    return projects


_EXTERNAL_PREFIX = {"python": "pypi", "javascript": "npm", "rust": "crates", "go": "go"}


def build_graph(root: Path, *, skip: Iterable[str] = ()) -> Any:
    """The workspace dependency graph (``networkx.DiGraph``); ``skip``: absolute dirs not to enter."""
    import networkx as nx

    projects = collect_projects(Path(root), skip=skip)
    graph = nx.DiGraph(root=os.fspath(root))
    by_name: dict[tuple[str, str], str] = {}
    by_import: dict[str, str] = {}
    for p in projects:
        graph.add_node(p.key, kind="project", name=p.name, path=p.path, version=p.version or "",
                       ecosystems=",".join(p.ecosystems), provides=",".join(sorted(p.provides)),
                       problems=len(p.problems))
        for eco in p.ecosystems or ["python"]:
            by_name.setdefault((eco, normalize(p.name) if eco == "python" else p.name), p.key)
        for mod in p.provides:
            by_import.setdefault(mod, p.key)
    for p in projects:
        declared: set[str] = set()
        for dep in p.deps:
            eco = dep["ecosystem"]
            dep_name = str(dep["name"])
            target = by_name.get((eco, normalize(dep_name) if eco == "python" else dep_name))
            if target is None:
                target = f"{_EXTERNAL_PREFIX[eco]}:{normalize(dep_name) if eco == 'python' else dep_name}"
                if target not in graph:
                    graph.add_node(target, kind="external", name=dep_name, path="", version="",
                                   ecosystems=eco, provides="", problems=0)
            if target == p.key:
                continue
            declared.add(target)
            if graph.has_edge(p.key, target):
                continue
            graph.add_edge(p.key, target, via="manifest", group=str(dep.get("group", "")),
                           spec=str(dep.get("spec", ""))[:200], declared=True)
        for mod in sorted(p.imports):
            target = by_import.get(mod)
            if target is None or target == p.key:
                continue
            if graph.has_edge(p.key, target):
                graph.edges[p.key, target]["via"] = "manifest+import"
            else:
                graph.add_edge(p.key, target, via="import", group="", spec="", declared=target in declared)
    return graph


def graph_json(graph: Any) -> dict[str, Any]:
    nodes = [{"id": n, **graph.nodes[n]} for n in sorted(graph.nodes)]
    edges = [{"source": a, "target": b, **graph.edges[a, b]} for a, b in sorted(graph.edges)]
    projects = [n for n in nodes if n["kind"] == "project"]
    return {"root": graph.graph.get("root"), "projects": len(projects),
            "externals": len(nodes) - len(projects), "edges": len(edges),
            "internal_edges": sum(1 for e in edges if e["target"].startswith("project:")),
            "nodes": nodes, "links": edges}


def drawing(graph: Any, *, max_nodes: int = 120) -> Any:
    """What to draw: every project, and the external dependencies shared by several projects
    (all of them when the graph is small)."""
    from noa_core.graphs import GraphDrawing

    keep = [n for n in graph.nodes if graph.nodes[n]["kind"] == "project"]
    externals = sorted((n for n in graph.nodes if graph.nodes[n]["kind"] == "external"),
                       key=lambda n: (-graph.in_degree(n), n))
    if len(keep) + len(externals) <= max_nodes:
        keep += externals
    else:
        keep += [n for n in externals if graph.in_degree(n) >= 2][:max(0, max_nodes - len(keep))]
    chosen = set(keep)
    nodes = {n: (graph.nodes[n]["name"] if graph.nodes[n]["kind"] == "project" else n) for n in sorted(chosen)}
    groups = {n: ("project" if graph.nodes[n]["kind"] == "project" else n.split(":", 1)[0]) for n in chosen}
    edges = [(a, b) for a, b in graph.edges if a in chosen and b in chosen]
    return GraphDrawing(title=f"workspace dependencies: {graph.graph.get('root')}", nodes=nodes, edges=edges,
                        groups=groups, layout="layers")


def write_graph(graph: Any, out_dir: Path, *, image: str = "svg") -> dict[str, str]:
    """``deps.graphml``, ``deps.json`` and ``deps.<image>`` in ``out_dir``; returns their paths."""
    import networkx as nx

    from noa_core.graphs import render

    out_dir.mkdir(parents=True, exist_ok=True)
    graphml = out_dir / "deps.graphml"
    tmp = out_dir / f".deps.graphml.{os.getpid()}.tmp"
    nx.write_graphml(graph, tmp)
    os.replace(tmp, graphml)
    doc = graph_json(graph)
    js = out_dir / "deps.json"
    tmp = out_dir / f".deps.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, js)
    result = render(drawing(graph), out_dir / f"deps.{image}")
    return {"graphml": os.fspath(graphml), "json": os.fspath(js), "image": os.fspath(result.path),
            "renderer": result.renderer}


def markdown(graph: Any, files: dict[str, str] | None = None) -> str:
    """A markdown summary (the Prefect artifact): projects, their workspace edges, shared externals."""
    doc = graph_json(graph)
    lines = ["# Workspace dependency graph", "",
             f"{doc['projects']} projects, {doc['externals']} external dependencies, {doc['edges']} edges "
             f"({doc['internal_edges']} between workspace projects).", "",
             "| project | path | ecosystems | depends on (workspace) | external deps |", "|---|---|---|---|---|"]
    for n in doc["nodes"]:
        if n["kind"] != "project":
            continue
        out = [b for a, b in graph.out_edges(n["id"])]
        internal = ", ".join(graph.nodes[b]["name"] + (" (import)" if graph.edges[n["id"], b]["via"] == "import" else "")
                             for b in out if graph.nodes[b]["kind"] == "project") or "-"
        lines.append(f"| {n['name']} | {n['path']} | {n['ecosystems'] or '-'} | {internal} | "
                     f"{sum(1 for b in out if graph.nodes[b]['kind'] == 'external')} |")
    shared = sorted(((graph.in_degree(n), n) for n in graph.nodes
                     if graph.nodes[n]["kind"] == "external" and graph.in_degree(n) >= 2), reverse=True)[:20]
    if shared:
        lines += ["", "Most shared external dependencies: " + ", ".join(f"{n} ({d})" for d, n in shared)]
    if files:
        lines += ["", "Files: " + ", ".join(f"`{v}`" for k, v in files.items() if k != "renderer")]
    return "\n".join(lines) + "\n"
