"""Layouts and renderers for :class:`GraphDrawing` (see the package docstring)."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from noa_core.errors import BadInput, NoaError

FORMATS = (".svg", ".png", ".dot", ".gv")
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1")


class RenderUnavailable(NoaError):
    """No renderer for the asked format is installed here."""

    exit_code = 2


@dataclass(frozen=True)
class GraphDrawing:
    """What to draw: nodes (id -> label), their group (colour), edges, and how to lay them out.

    ``layout`` is ``"lanes"`` (one row per node in the given order, one lane per group:
    a change log) or ``"layers"`` (left-to-right layers of a dependency graph).
    """

    title: str
    nodes: Mapping[str, str]
    edges: Sequence[tuple[str, str]]
    groups: Mapping[str, str] = field(default_factory=dict)
    layout: str = "layers"


@dataclass(frozen=True)
class RenderResult:
    path: Path
    renderer: str  # "graphviz dot", "noa svg", "noa svg + chromium", "dot source"


def _color(group: str, order: dict[str, int]) -> str:
    if group not in order:
        order[group] = len(order)
    return PALETTE[order[group] % len(PALETTE)]


# layouts -----------------------------------------------------------------------------

def _lanes(d: GraphDrawing) -> tuple[dict[str, tuple[float, float]], float, float]:
    lane_of: dict[str, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for row, node in enumerate(d.nodes):
        group = d.groups.get(node, "")
        if group not in lane_of:
            lane_of[group] = len(lane_of) % 12
        pos[node] = (40 + 28 * lane_of[group], 50 + 26 * row)
    width = 40 + 28 * (max(lane_of.values(), default=0) + 1) + 460
    return pos, width, 50 + 26 * max(1, len(d.nodes)) + 20


def _layers(d: GraphDrawing) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Longest-path layering on the graph with cycles cut, barycentre ordering in each layer."""
    nodes = list(d.nodes)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in d.edges:
        if a in succ and b in succ and a != b:
            succ[a].append(b)
            pred[b].append(a)
    # depth-first order to drop back edges (cycles), then longest path from the sources
    state: dict[str, int] = {}
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    layer: dict[str, int] = {}
    for node in reversed(order):  # topological order of the acyclic part
        ins = [layer[p] for p in pred[node] if (p, node) not in back and p in layer]
        layer[node] = 1 + max(ins) if ins else 0
    layers: dict[int, list[str]] = {}
    for node in nodes:
        layers.setdefault(layer.get(node, 0), []).append(node)
    rank: dict[str, float] = {}
    for index in sorted(layers):
        members = layers[index]
        if index > 0:
            members.sort(key=lambda n: (sum(rank.get(p, 0) for p in pred[n]) / len(pred[n]) if pred[n] else 1e9, n))
        else:
            members.sort()
        for i, n in enumerate(members):
            rank[n] = i
    col_w, row_h = 240, 34
    pos = {n: (30 + col_w * layer.get(n, 0), 50 + row_h * rank[n]) for n in nodes}
    width = 30 + col_w * (max(layers, default=0) + 1) + 40
    height = 50 + row_h * max((len(m) for m in layers.values()), default=1) + 20
    return pos, width, height


# writers -----------------------------------------------------------------------------

def to_svg(d: GraphDrawing) -> str:
    pos, width, height = _lanes(d) if d.layout == "lanes" else _layers(d)
    colors: dict[str, int] = {}
    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="12" y="24" font-size="15" font-weight="bold">{esc(d.title)}</text>']
    for a, b in d.edges:
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        if d.layout == "lanes":
            mid = (y1 + y2) / 2
            out.append(f'<path d="M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2 + 6:.0f}" '
                       f'fill="none" stroke="#999" stroke-width="1.3" marker-end="url(#arrow)"/>')
        else:
            sx, ex = x1 + 150, x2 - 4
            out.append(f'<path d="M{sx:.0f},{y1:.0f} C{sx + 40:.0f},{y1:.0f} {ex - 40:.0f},{y2:.0f} {ex:.0f},{y2:.0f}" '
                       f'fill="none" stroke="#999" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for node, label in d.nodes.items():
        x, y = pos[node]
        color = _color(d.groups.get(node, ""), colors)
        if d.layout == "lanes":
            out.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="6" fill="{color}"><title>{esc(node)}</title></circle>')
            label_x = 40 + 28 * min(12, len({d.groups.get(n, '') for n in d.nodes})) + 10
            out.append(f'<text x="{label_x}" y="{y + 4:.0f}">{esc(label)}</text>')
        else:
            out.append(f'<rect x="{x - 4:.0f}" y="{y - 12:.0f}" width="154" height="22" rx="5" fill="{color}" '
                       f'fill-opacity="0.18" stroke="{color}"><title>{esc(node)}</title></rect>')
            out.append(f'<text x="{x + 2:.0f}" y="{y + 4:.0f}">{esc(label[:24])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(d: GraphDrawing) -> str:
    colors: dict[str, int] = {}
    lines = [f"digraph {_dot_id(d.title)} {{",
             f'  graph [rankdir={"TB" if d.layout == "lanes" else "LR"}, label={_dot_id(d.title)}, labelloc=t];',
             '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", fontsize=10];']
    for node, label in d.nodes.items():
        color = _color(d.groups.get(node, ""), colors)
        lines.append(f"  {_dot_id(node)} [label={_dot_id(label)}, fillcolor={_dot_id(color + '40')}, "
                     f"color={_dot_id(color)}];")
    for a, b in d.edges:
        if a in d.nodes and b in d.nodes:
            lines.append(f"  {_dot_id(a)} -> {_dot_id(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _svg_size(svg: str) -> tuple[int, int]:
    import re

    m = re.search(r'width="(\d+)" height="(\d+)"', svg)
    return (int(m.group(1)), int(m.group(2))) if m else (1200, 800)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def svg_to_png(svg: str, out: Path, *, timeout: float = 90.0) -> None:
    browser = _chromium()
    if browser is None:
        raise RenderUnavailable("a PNG needs Graphviz `dot` or Chromium and neither is installed: ask for .svg")
    width, height = _svg_size(svg)
    width, height = min(width, 8000), min(height, 16000)
    with tempfile.TemporaryDirectory(prefix="noa-render-") as tmp:
        src = Path(tmp) / "graph.svg"
        src.write_text(svg, encoding="utf-8")
        png = Path(tmp) / "graph.png"
        # the headless viewport is shorter than the window: leave room, the margin stays white
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height + 160}",
               f"--screenshot={png}", src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise NoaError(f"chromium did not render the PNG within {timeout:.0f} s") from None
        if not png.is_file() or png.stat().st_size == 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise NoaError(f"chromium did not render the PNG (exit {proc.returncode}): {tail[0]}")
        _atomic_write(out, png.read_bytes())


def render(d: GraphDrawing, out: Path, *, prefer_dot: bool = True) -> RenderResult:
    """Write ``d`` to ``out`` (.svg, .png, .dot/.gv), with the best renderer installed."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise BadInput(f"{out.name}: the graph can be written as {', '.join(FORMATS)}")
    if suffix in (".dot", ".gv"):
        _atomic_write(out, to_dot(d).encode("utf-8"))
        return RenderResult(out, "dot source")
    dot = shutil.which("dot") if prefer_dot else None
    if dot:
        proc = subprocess.run([dot, f"-T{suffix[1:]}"], input=to_dot(d).encode("utf-8"), capture_output=True,
                              timeout=120)
        if proc.returncode == 0 and proc.stdout:
            _atomic_write(out, proc.stdout)
            return RenderResult(out, "graphviz dot")
    svg = to_svg(d)
    if suffix == ".svg":
        _atomic_write(out, svg.encode("utf-8"))
        return RenderResult(out, "noa svg")
    svg_to_png(svg, out)
    return RenderResult(out, "noa svg + chromium")
