"""The deploy supervisor: one detached process per ``NOA_HOME`` that owns Caddy and the
local app instances, so that they outlive the ``noa deploy`` command that started them.

* Files under ``NOA_HOME/deploy/``: ``supervisor.json`` (pid, API port), ``token``
  (0600; every API call sends it), ``state.json`` (routes and instances, rewritten on
  every change), ``edge.json`` / ``router.json`` (the last config applied to each of the
  two Caddy processes, see :mod:`noa_core.deploy.caddy_config`), ``access.log`` (the
  router's JSON access log), ``logs/`` (app output), ``work/`` (instance copies).
* API: JSON over HTTP on a free 127.0.0.1 port (:class:`SupervisorClient`).
* A monitor thread, every 50 ms: tails the access log into per-upstream counts, restarts
  crashed app instances (with back-off), and restarts either Caddy if it died - each is
  started from its JSON file, so it comes back with the last routing applied (while the
  router restarts, the edge holds and retries requests).
* On start it kills what a previous supervisor of this home left running (pids recorded
  in ``state.json`` and checked against their command line), restarts the instances that
  were running on their old ports and restores the routes.

This module is the daemon. Start/reuse it with
:func:`~noa_core.deploy.supervisor_client.ensure_supervisor`; stop it (and everything it runs) with
:meth:`~noa_core.deploy.supervisor_client.SupervisorClient.shutdown`; the Caddy processes are
:mod:`noa_core.deploy.caddy_proc`, the shared helpers :mod:`noa_core.deploy.supervisor_common`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from noa_core.deploy.accesslog import AccessCounter, LogTail
from noa_core.deploy.caddy_config import edge_config, router_config, weights_path
from noa_core.deploy.caddy_proc import CaddyProc
from noa_core.deploy.interface import DeployError, Release, RouterError, Upstream
from noa_core.deploy.processes import MARKER_ENV, Supervised
from noa_core.deploy.supervisor_common import deploy_dir, free_port, kill_group, utc_now

__all__ = ["Supervisor", "main", "serve"]


class Supervisor:
    """The daemon's state: the two Caddy processes, the routes and the supervised app instances."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        self.dir = deploy_dir(self.home)
        self.state_path = self.dir / "state.json"
        self.access_log = self.dir / "access.log"
        self.lock = threading.RLock()
        self.counter = AccessCounter()
        self.tail = LogTail(self.access_log, self.counter)
        # app -> {"listen": public host:port, "inner": router host:port, "upstreams": [..]}
        self.routes: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, Supervised] = {}
        self.edge = CaddyProc("edge", self.dir)
        self.router = CaddyProc("router", self.dir)
        self.stopping = threading.Event()
        self._applied_endpoints: dict[str, tuple[str, ...]] = {}

    # -- state
    def save(self) -> None:
        if not self.dir.is_dir():
            return
        data = {
            "edge_admin_port": self.edge.admin_port, "router_admin_port": self.router.admin_port,
            "caddy_pids": [c.proc.pid for c in (self.edge, self.router) if c.proc],
            "routes": self.routes,
            "instances": {i: {"release": s.release.as_dict(), "port": s.port, "workdir": str(s.workdir),
                              "log": str(s.log_path), "state": s.state, "restarts": s.restarts,
                              "pid": s.proc.pid if s.proc else None, "argv0": s.marker}
                          for i, s in self.instances.items()},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.state_path)

    def restore(self) -> None:
        if not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_text())
        except ValueError:
            return
        for pid in data.get("caddy_pids") or []:
            for caddy in (self.edge, self.router):
                kill_group(int(pid), str(caddy.json_path))
        self.edge.admin_port = int(data.get("edge_admin_port") or 0)
        self.router.admin_port = int(data.get("router_admin_port") or 0)
        self.routes = dict(data.get("routes") or {})
        for iid, d in dict(data.get("instances") or {}).items():
            kill_group(int(d.get("pid") or 0), f"{MARKER_ENV}={iid}")
            if d.get("state") in ("stopped", "crashed") or not Path(d["workdir"]).is_dir():
                continue
            s = Supervised(iid, Release.from_dict(d["release"]), int(d["port"]), Path(d["workdir"]),
                           Path(d["log"]), self.home)
            s.spawn()
            self.instances[iid] = s

    # -- caddy
    def _router_cfg(self) -> dict[str, Any]:
        routes = {app: (r["inner"], [Upstream(**u) for u in r["upstreams"]]) for app, r in self.routes.items()}
        return router_config(f"127.0.0.1:{self.router.admin_port}", str(self.access_log), routes)

    def _edge_cfg(self) -> dict[str, Any]:
        routes = {app: (r["listen"], r["inner"]) for app, r in self.routes.items()}
        return edge_config(f"127.0.0.1:{self.edge.admin_port}", routes)

    def start_router(self) -> None:
        if not self.router.admin_port:
            self.router.admin_port = free_port()
        self.router.start(self._router_cfg())
        self._applied_endpoints = {a: tuple(u["endpoint"] for u in r["upstreams"]) for a, r in self.routes.items()}

    def start_edge(self) -> None:
        if not self.edge.admin_port:
            self.edge.admin_port = free_port()
        self.edge.start(self._edge_cfg())

    def apply(self, app: str) -> None:
        """Push the routing of ``app`` to the router: a PATCH of the weights when only they changed."""
        r = self.routes[app]
        eps = tuple(u["endpoint"] for u in r["upstreams"])
        cfg = self._router_cfg()
        if eps and self._applied_endpoints.get(app) == eps:
            self.router.patch(weights_path(app), [int(u["weight"]) for u in r["upstreams"]], cfg)
        else:
            self.router.load(cfg)
        self._applied_endpoints[app] = eps

    # -- monitor
    def monitor(self, on_orphaned: Any = None) -> None:
        last_home_check = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_home_check > 2.0:
                last_home_check = time.monotonic()
                if not self.dir.is_dir():  # NOA_HOME was deleted: nobody can reach us any more
                    sys.stderr.write("noa supervisor: NOA_HOME is gone; stopping\n")
                    if on_orphaned is not None:
                        on_orphaned()
                    return
            try:
                self.tail.poll()
                now = time.monotonic()
                with self.lock:
                    changed = False
                    for s in self.instances.values():
                        before = (s.state, s.restarts)
                        s.poll(now)
                        changed |= before != (s.state, s.restarts)
                    for c, start in ((self.router, self.start_router), (self.edge, self.start_edge)):
                        if c.dead() and not self.stopping.is_set():
                            c.restarts += 1
                            sys.stderr.write(f"noa supervisor: caddy ({c.name}) died; restarting\n")
                            start()  # from its JSON file: the last routing applied
                            changed = True
                    if changed:
                        self.save()
            except Exception as exc:  # noqa: BLE001 - the monitor must survive anything
                sys.stderr.write(f"noa supervisor: monitor: {exc}\n")
            self.stopping.wait(0.05)

    # -- API operations
    def op_status(self, _: Mapping[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(),
                "caddy": {c.name: {"pid": c.proc.pid if c.proc else None, "admin": c.admin, "restarts": c.restarts}
                          for c in (self.edge, self.router)},
                "routes": self.routes,
                "instances": {i: self._inst(s) for i, s in self.instances.items()}}

    def _inst(self, s: Supervised) -> dict[str, Any]:
        st = s.status()
        return {"instance_id": s.instance_id, "app": s.release.app, "release_id": s.release.release_id,
                "port": s.port, "pid": s.proc.pid if s.proc else None, "logs": str(s.log_path),
                "state": st.state, "restarts": st.restarts, "exit_code": st.exit_code, "reason": st.reason,
                "isolation": s.isolation}

    def op_route(self, body: Mapping[str, Any]) -> dict[str, Any]:
        app = str(body["app"])
        if app not in self.routes:
            port = int(body.get("port") or 0) or free_port()
            self.routes[app] = {"listen": f"127.0.0.1:{port}", "inner": f"127.0.0.1:{free_port()}", "upstreams": []}
            self.apply(app)
            self.edge.load(self._edge_cfg())
            self.save()
        return {"listen": self.routes[app]["listen"]}

    def op_set_upstreams(self, body: Mapping[str, Any]) -> dict[str, Any]:
        app = str(body["app"])
        if app not in self.routes:
            self.op_route({"app": app})
        ups = [{"endpoint": str(u["endpoint"]), "weight": int(u.get("weight", 1)), "label": str(u.get("label", ""))}
               for u in body["upstreams"]]
        self.routes[app]["upstreams"] = ups
        self.apply(app)
        self.save()
        return {"upstreams": ups}

    def op_counts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.tail.poll()
        return {"counts": {k: v.as_dict() for k, v in self.counter.counts(str(body["app"])).items()}}

    def op_inflight(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            rows = httpx.get(self.router.admin + "/reverse_proxy/upstreams", timeout=5).json() or []
        except (httpx.HTTPError, ValueError) as exc:
            raise RouterError(f"caddy admin API unreachable: {exc}") from None
        n = sum(int(r.get("num_requests", 0)) for r in rows if r.get("address") == body["endpoint"])
        return {"in_flight": n}

    def op_start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from noa_core.isolation import make_work_copy

        rel = Release.from_dict(body["release"])
        iid = f"{rel.release_id}-{secrets.token_hex(3)}"
        work = make_work_copy(Path(rel.source), self.dir / "work" / iid)
        s = Supervised(iid, rel, free_port(), work, self.dir / "logs" / f"{iid}.log", self.home,
                       max_restarts=int(body.get("max_restarts", 3)))
        s.spawn()
        self.instances[iid] = s
        self.save()
        return self._inst(s)

    def op_instance(self, body: Mapping[str, Any]) -> dict[str, Any]:
        s = self.instances.get(str(body["instance_id"]))
        if s is None:
            return {"instance_id": body["instance_id"], "state": "unknown", "restarts": 0, "exit_code": None,
                    "reason": "not known to the supervisor"}
        return self._inst(s)

    def op_stop(self, body: Mapping[str, Any]) -> dict[str, Any]:
        s = self.instances.get(str(body["instance_id"]))
        if s is not None and s.state != "stopped":
            s.stop(float(body.get("grace_s", 10.0)))
            shutil.rmtree(s.workdir.parent, ignore_errors=True)  # its copy of the tree (logs stay)
            self.save()
        return {"stopped": True}

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            for s in self.instances.values():
                if s.state not in ("stopped", "crashed"):
                    s.stop(3.0)
                    s.state = "running"  # keep it "running" in state.json: a new supervisor restarts it
            self.edge.stop()
            self.router.stop()
            self.save()


OPS = {"status": "op_status", "route": "op_route", "upstreams": "op_set_upstreams", "counts": "op_counts",
       "inflight": "op_inflight", "start": "op_start", "instance": "op_instance", "stop": "op_stop"}


def serve(home: Path, forget: bool = False) -> int:
    sup = Supervisor(home)
    sup.dir.mkdir(parents=True, exist_ok=True)
    lock_fh = open(sup.dir / "supervisor.lock", "w")
    try:
        fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.stderr.write("noa supervisor: another supervisor owns this NOA_HOME\n")
        return 1
    token_path = sup.dir / "token"
    token = secrets.token_urlsafe(24)
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    if forget:
        sup.state_path.unlink(missing_ok=True)
    sup.restore()
    sup.tail.start_at_end()
    sup.start_router()
    sup.start_edge()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            if not secrets.compare_digest(self.headers.get("X-Noa-Token", ""), token):
                return self._send(401, {"error": "bad token"})
            op = OPS.get(self.path.strip("/"))
            if self.path.strip("/") == "shutdown":
                self._send(200, {"ok": True})
                threading.Thread(target=lambda: (sup.shutdown(), httpd.shutdown()), daemon=True).start()
                return
            if op is None:
                return self._send(404, {"error": f"unknown operation {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)) or b"{}")
                with sup.lock:
                    self._send(200, getattr(sup, op)(body))
            except DeployError as exc:
                self._send(409, {"error": exc.one_line()})
            except Exception as exc:  # noqa: BLE001
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        def _send(self, code: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    info = {"pid": os.getpid(), "port": httpd.server_address[1], "started_at": utc_now()}
    (sup.dir / "supervisor.json").write_text(json.dumps(info))
    def stop_serving() -> None:
        # the HTTP loop must end even when stopping the apps fails (e.g. NOA_HOME deleted under us)
        try:
            sup.shutdown()
        except Exception as exc:  # noqa: BLE001 - reported; the process still exits
            sys.stderr.write(f"noa supervisor: shutdown: {exc}\n")
        finally:
            httpd.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop_serving, daemon=True).start())

    def orphaned() -> None:
        stop_serving()

    mon = threading.Thread(target=sup.monitor, args=(orphaned,), daemon=True)
    mon.start()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        sup.stopping.set()
        (sup.dir / "supervisor.json").unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noa_core.deploy.supervisor")
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--forget", action="store_true", help="start clean: ignore the saved state")
    args = ap.parse_args(argv)
    return serve(args.home, args.forget)


if __name__ == "__main__":
    raise SystemExit(main())
