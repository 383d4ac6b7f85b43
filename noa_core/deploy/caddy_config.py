"""Caddy JSON configuration for NOA's routes (pure functions, no I/O).

Two Caddy processes, because every change through Caddy's admin API reloads the whole
configuration, and on Linux each reload opens new ``SO_REUSEPORT`` listeners and closes
the old ones: connections waiting in the old accept queue are reset (measured here:
about one failed request in 400 per routing change at 250 req/s).

* the **edge** Caddy holds the public listener of each app (``127.0.0.1:P``) and proxies
  to the router; its configuration changes only when a route is created. It retries
  idempotent requests (for up to ``try_duration``) when the router resets a connection
  or is down, so a router reload or restart costs no client request;
* the **router** Caddy has one server per app on an inner loopback port: ``log_append``
  (app and chosen upstream into the access log) then ``reverse_proxy`` with
  ``weighted_round_robin`` (weight 0 = no new requests; dial failures retried on another
  upstream). Weights are changed with ``PATCH .../selection_policy/weights``. Its JSON
  access log is what the supervisor tails for per-upstream counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from noa_core.deploy.interface import Upstream

ACCESS_LOGGER = "noa"  # -> logger name http.log.access.noa
UPSTREAM_FIELD = "upstream"
APP_FIELD = "noa_app"
IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]


def server_name(app: str) -> str:
    return f"app-{app}"


def weights_path(app: str) -> str:
    """Router admin API path of an app's weights (PATCH target)."""
    return f"/config/apps/http/servers/{server_name(app)}/routes/0/handle/2/load_balancing/selection_policy/weights"


def _base(admin: str) -> dict[str, Any]:
    return {"admin": {"listen": admin, "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "ERROR"}}}}


def router_server(app: str, listen: str, upstreams: Sequence[Upstream]) -> dict[str, Any]:
    ups = list(upstreams)
    handle: list[dict[str, Any]] = [
        {"handler": "log_append", "key": APP_FIELD, "value": app},
        {"handler": "log_append", "key": UPSTREAM_FIELD, "value": "{http.reverse_proxy.upstream.hostport}"},
    ]
    if ups:
        handle.append({
            "handler": "reverse_proxy",
            "upstreams": [{"dial": u.endpoint} for u in ups],
            "load_balancing": {
                "selection_policy": {"policy": "weighted_round_robin", "weights": [int(u.weight) for u in ups]},
                "retries": 2,
            },
        })
    else:
        handle.append({"handler": "static_response", "status_code": 503, "body": "no upstream\n"})
    return {"listen": [listen], "routes": [{"handle": handle}], "logs": {"default_logger_name": ACCESS_LOGGER},
            "automatic_https": {"disable": True}, "protocols": ["h1"]}


def router_config(admin: str, access_log: str, routes: Mapping[str, tuple[str, Sequence[Upstream]]]) -> dict[str, Any]:
    """``routes``: app -> (inner listen host:port, upstreams)."""
    cfg = _base(admin)
    cfg["logging"]["logs"]["default"]["exclude"] = [f"http.log.access.{ACCESS_LOGGER}"]
    cfg["logging"]["logs"]["access"] = {
        "writer": {"output": "file", "filename": access_log, "roll": False},
        "encoder": {"format": "json"}, "level": "DEBUG", "include": [f"http.log.access.{ACCESS_LOGGER}"]}
    servers = {server_name(app): router_server(app, listen, ups) for app, (listen, ups) in sorted(routes.items())}
    cfg["apps"] = {"http": {"servers": servers}} if servers else {}
    return cfg


def edge_config(admin: str, routes: Mapping[str, tuple[str, str]], *, try_duration_s: float = 10.0) -> dict[str, Any]:
    """``routes``: app -> (public listen host:port, router's inner host:port)."""
    cfg = _base(admin)
    servers = {}
    for app, (listen, inner) in sorted(routes.items()):
        servers[server_name(app)] = {
            "listen": [listen], "automatic_https": {"disable": True},
            "routes": [{"handle": [{
                "handler": "reverse_proxy", "upstreams": [{"dial": inner}],
                "load_balancing": {"retries": 50, "try_duration": f"{int(try_duration_s * 1000)}ms",
                                   "try_interval": "50ms", "retry_match": [{"method": IDEMPOTENT}]},
            }]}],
        }
    cfg["apps"] = {"http": {"servers": servers}} if servers else {}
    return cfg
