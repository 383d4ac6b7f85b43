"""Plugins: third-party packages extend NOA through the entry-point group ``noa.plugins``.

Discovery is shared by the ports that take plugins (the API server, deploy targets); it knows none of them.

An entry point names a module or object (``hello = noa_plugin_hello``). What NOA reads from it,
each optional:

* ``api_router(settings) -> fastapi.APIRouter``: mounted under ``/plugins/<entry point name>``,
  behind the API's bearer auth (GET/HEAD need ``read``, other methods ``write``) and rate limits;
* ``event_subscribers(settings) -> Iterable[Subscriber]``: added to the server's event bus;
* anything else (analyzers, deploy targets) is found by the port that wants it with
  :func:`plugin_attributes`.

A plugin that fails to import or to build is reported (``error: ...`` in ``/health``), never fatal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUP = "noa.plugins"


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    target: str
    obj: Any
    status: str  # "ok" or "error: ..."


def discover(group: str = GROUP) -> list[LoadedPlugin]:
    out: list[LoadedPlugin] = []
    seen: set[str] = set()
    eps: list[EntryPoint] = sorted(entry_points(group=group), key=lambda e: e.name)
    for ep in eps:
        if ep.name in seen:  # the first distribution on sys.path wins
            continue
        seen.add(ep.name)
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
            out.append(LoadedPlugin(ep.name, ep.value, None, f"error: {type(exc).__name__}: {exc}"[:300]))
            continue
        out.append(LoadedPlugin(ep.name, ep.value, obj, "ok"))
    return out


def plugin_attributes(attr: str, group: str = GROUP) -> Iterator[tuple[str, Any]]:
    """``(plugin name, attribute)`` for every loaded plugin that has ``attr``."""
    for plugin in discover(group):
        if plugin.obj is not None and hasattr(plugin.obj, attr):
            yield plugin.name, getattr(plugin.obj, attr)
