"""The language swarms' process work pools by name: each language's flow, its deployment
(``<flow>/<pool>``) and its entrypoint. Pure data, no Prefect: the master flow runs the
deployments by these names and :mod:`deployments.swarm_pools` registers them."""

from __future__ import annotations

from noa_core.swarm.summary import LANGUAGES, POOLS

__all__ = ["DEPLOYMENTS", "ENTRYPOINTS", "FLOW_NAMES"]

FLOW_NAMES: dict[str, str] = {"python": "python_swarm", "rust": "rust_swarm", "go": "go_swarm",
                              "javascript": "javascript_swarm"}
#: deployment names, ``<flow>/<deployment>``; each deployment is named after its pool
DEPLOYMENTS: dict[str, str] = {lang: f"{FLOW_NAMES[lang]}/{POOLS[lang]}" for lang in LANGUAGES}
ENTRYPOINTS: dict[str, str] = {lang: f"flows/swarm.py:{FLOW_NAMES[lang]}" for lang in LANGUAGES}
