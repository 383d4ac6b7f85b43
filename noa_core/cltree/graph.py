"""The CL tree as a graph: networkx for analysis, a lane drawing (one lane per subject) for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from noa_core.cltree.entry import ChangeEntry
from noa_core.graphs import GraphDrawing


def to_networkx(entries: Sequence[ChangeEntry]) -> Any:
    """A ``networkx.DiGraph``: one node per entry (attributes seq, kind, subject), edges child -> parent."""
    import networkx as nx

    graph = nx.DiGraph()
    for e in entries:
        graph.add_node(e.id, seq=e.seq, kind=e.kind, subject=e.subject, created_at=e.created_at)
    for e in entries:
        for parent in e.parents:
            if parent in graph:
                graph.add_edge(e.id, parent)
    return graph


def drawing(entries: Sequence[ChangeEntry], *, title: str = "NOA CL tree") -> GraphDrawing:
    """Rows in seq order, one lane (and colour) per subject, arrows to both parents."""
    nodes = {e.id: f"#{e.seq} {e.kind} {e.subject}  {e.created_at[:19].replace('T', ' ')}  {e.id[:10]}"
             for e in entries}
    edges = [(e.id, p) for e in entries for p in e.parents if p in nodes]
    groups = {e.id: e.subject for e in entries}
    return GraphDrawing(title=title, nodes=nodes, edges=edges, groups=groups, layout="lanes")
