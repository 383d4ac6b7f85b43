"""Rendering directed graphs (the CL tree, the workspace dependency graph) to SVG/PNG/DOT.

Prefect-free. Renderers, best first: Graphviz ``dot`` when it is installed; else NOA's
own SVG writer (a layered or lane layout, no extra package); a PNG then comes from
headless Chromium screenshotting that SVG when Chromium is installed (else a PNG is
refused with the reason, and SVG/DOT still work).
"""

from noa_core.graphs.render import GraphDrawing, RenderResult, RenderUnavailable, render

__all__ = ["GraphDrawing", "RenderResult", "RenderUnavailable", "render"]
