"""The Docker target against a FAKE Docker Engine API (no engine runs here).

The fake is an HTTP server on loopback that answers the Engine API's documented shapes
(/version, /_ping, /build streaming JSON, /containers/create|start|json|stop, DELETE) and
records every call; the real docker SDK talks to it through ``docker.DockerClient(base_url=
"tcp://127.0.0.1:<port>")``. The "container" publishes the port of a real HTTP server
started by the test, so health checks are real requests. What this does NOT exercise: a
real image build, a real container, real restarts.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from noa_core.deploy.docker_target import DockerTarget
from noa_core.deploy.dockerfiles import (
    CONTAINER_PORT,
    GENERATED_DOCKERFILE,
    generated_dockerfile,
)
from noa_core.deploy.interface import DeployError, Release, TargetUnavailable

API = "1.45"


class FakeDockerEngine:
    """Records calls; keeps images and containers in dicts; answers like the Engine API."""

    def __init__(self, app_port: int) -> None:
        self.app_port = app_port
        self.calls: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.build_contexts: list[dict[str, bytes]] = []
        self.fail_build: str | None = None
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    return self.rfile.read(n)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def _send(self, code: int, doc: Any = None, ctype: str = "application/json") -> None:
                data = b"" if doc is None else (doc if isinstance(doc, bytes) else json.dumps(doc).encode())
                self.send_response(code)
                if data or code not in (204, 304):
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Api-Version", API)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                path = url.path
                if path.startswith(f"/v{API}/"):
                    path = path[len(f"/v{API}"):]
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                body = self._body()
                engine.calls.append({"method": method, "path": path, "query": query,
                                     "json": json.loads(body) if body[:1] in (b"{", b"[") else None})
                engine.handle(self, method, path, query, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_HEAD(self) -> None:
                self._route("HEAD")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"tcp://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def handle(self, h: Any, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        parts = path.strip("/").split("/")
        if path == "/version":
            return h._send(200, {"Version": "27.0.3", "ApiVersion": API, "MinAPIVersion": "1.24", "Os": "linux",
                                 "Arch": "amd64", "KernelVersion": "6.1.0", "GitCommit": "fake"})
        if path == "/_ping":
            return h._send(200, b"OK", "text/plain")
        if path == "/build" and method == "POST":
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
            self.build_contexts.append(files)
            if self.fail_build:
                lines = [{"stream": "Step 1/9 : FROM python:3.11-slim\n"}, {"errorDetail": {"message": self.fail_build},
                                                                              "error": self.fail_build}]
            else:
                image_id = uuid.uuid4().hex + uuid.uuid4().hex
                self.images[image_id] = {"Id": f"sha256:{image_id}", "RepoTags": [query.get("t", "")],
                                         "Config": {"Labels": json.loads(query.get("labels", "{}"))}}
                lines = [{"stream": "Step 1/9 : FROM python:3.11-slim\n"}, {"stream": " ---> 1a2b3c4d5e6f\n"},
                         {"aux": {"ID": f"sha256:{image_id}"}}, {"stream": f"Successfully built {image_id[:12]}\n"},
                         {"stream": f"Successfully tagged {query.get('t')}\n"}]
            return h._send(200, b"".join(json.dumps(x).encode() + b"\r\n" for x in lines))
        if parts[0] == "images" and parts[-1] == "json":
            ref = "/".join(parts[1:-1])
            for image_id, img in self.images.items():
                if image_id.startswith(ref) or ref in img["RepoTags"] or img["Id"] == ref:
                    return h._send(200, img)
            return h._send(404, {"message": f"No such image: {ref}"})
        if path == "/containers/create" and method == "POST":
            spec = json.loads(body)
            cid = uuid.uuid4().hex + uuid.uuid4().hex
            ports = {k: [{"HostIp": b.get("HostIp") or "0.0.0.0", "HostPort": str(self.app_port)} for b in v]
                     for k, v in (spec.get("HostConfig") or {}).get("PortBindings", {}).items()}
            self.containers[cid] = {"Id": cid, "Name": "/" + query.get("name", cid[:12]), "Config": spec,
                                    "HostConfig": spec.get("HostConfig"), "RestartCount": 0,
                                    "State": {"Status": "created", "Running": False, "Restarting": False,
                                              "ExitCode": 0, "OOMKilled": False},
                                    "NetworkSettings": {"Ports": {}}, "_ports": ports}
            return h._send(201, {"Id": cid, "Warnings": []})
        if parts[0] == "containers" and len(parts) >= 2:
            c = self.containers.get(parts[1])
            if c is None:
                return h._send(404, {"message": f"No such container: {parts[1]}"})
            action = parts[2] if len(parts) > 2 else None
            if action == "start":
                c["State"].update(Status="running", Running=True)
                c["NetworkSettings"]["Ports"] = c["_ports"]
                return h._send(204)
            if action == "json":
                return h._send(200, {k: v for k, v in c.items() if not k.startswith("_")})
            if action == "stop":
                if not c["State"]["Running"]:
                    return h._send(304)
                c["State"].update(Status="exited", Running=False, ExitCode=0)
                return h._send(204)
            if action is None and h.command == "DELETE":
                del self.containers[parts[1]]
                return h._send(204)
        return h._send(404, {"message": f"page not found: {method} {path}"})

    def called(self, method: str, prefix: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method and c["path"].startswith(prefix)]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def engine() -> Iterator[FakeDockerEngine]:
    app = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
    fake = FakeDockerEngine(app.server_address[1])
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    app.shutdown()
    app.server_close()


def _release(tree: Path, **over: Any) -> Release:
    (tree / "src").mkdir(parents=True, exist_ok=True)
    (tree / "src" / "app.py").write_text("print('hi')\n")
    (tree / ".git").mkdir(exist_ok=True)
    (tree / ".git" / "config").write_text("[core]\n")
    fields: dict[str, Any] = {"app": "hello-service", "release_id": "hello-service-1.0.0-3f2a9c1d", "version": "1.0.0",
                                  "source": str(tree), "content_hash": "3f2a9c1d" * 8,
                                  "command": ("python", "-m", "hello_service.server"), "port_env": "PORT",
                                  "env": {"GREETING": "hi"}}
    fields.update(over)
    return Release(**fields)


def test_fake_engine_build_run_health_status_stop(engine: FakeDockerEngine, tmp_path: Path) -> None:
    target = DockerTarget(base_url=engine.url)
    assert target.availability().ok
    release = _release(tmp_path / "tree")
    inst = target.start(release)
    # the image: built from a context holding the tree (no .git) and the generated Dockerfile
    (ctx,) = engine.build_contexts
    assert "src/app.py" in ctx and not any(n.startswith(".git") for n in ctx)
    dockerfile = ctx[GENERATED_DOCKERFILE].decode()
    assert 'CMD ["python", "-m", "hello_service.server"]' in dockerfile and f"ENV PORT={CONTAINER_PORT}" in dockerfile
    (build,) = engine.called("POST", "/build")
    assert build["query"]["t"] == "noa/hello-service:hello-service-1.0.0-3f2a9c1d"
    assert build["query"]["dockerfile"] == GENERATED_DOCKERFILE
    assert json.loads(build["query"]["labels"])["noa.release"] == release.release_id
    # the container: port published on loopback, env, labels, restart policy, limits
    (create,) = engine.called("POST", "/containers/create")
    spec = create["json"]
    assert create["query"]["name"] == "noa-hello-service-1.0.0-3f2a9c1d"
    assert spec["Image"] == "noa/hello-service:hello-service-1.0.0-3f2a9c1d"
    assert sorted(spec["Env"]) == ["GREETING=hi", f"PORT={CONTAINER_PORT}"]
    assert spec["HostConfig"]["PortBindings"] == {f"{CONTAINER_PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert spec["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert spec["HostConfig"]["Memory"] == 1024 ** 3 and spec["HostConfig"]["NanoCpus"] == 10 ** 9
    assert spec["Labels"]["noa.app"] == "hello-service"
    assert engine.called("POST", f"/containers/{inst.instance_id}/start")
    # where it answers, and a real health request to it
    assert (inst.host, inst.port, inst.target) == ("127.0.0.1", engine.app_port, "docker")
    assert target.health(inst).ok and target.wait_healthy(inst, timeout_s=5).ok
    assert target.status(inst).state == "running"
    # a crash after the restarts are used up
    engine.containers[inst.instance_id].update(RestartCount=3)
    engine.containers[inst.instance_id]["State"].update(Status="exited", Running=False, ExitCode=137)
    st = target.status(inst)
    assert st.state == "crashed" and st.restarts == 3 and "137" in st.reason
    target.stop(inst, drain_timeout_s=4)  # already exited: 304 then remove
    assert engine.containers == {} and target.status(inst).state == "stopped"
    target.stop(inst)  # stopping a gone container is not an error


def test_fake_engine_project_dockerfile_and_given_image(engine: FakeDockerEngine, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Dockerfile").write_text("FROM scratch\n")
    target = DockerTarget(base_url=engine.url)
    inst = target.start(_release(tree))
    assert engine.called("POST", "/build")[0]["query"]["dockerfile"] == "Dockerfile"
    assert GENERATED_DOCKERFILE not in engine.build_contexts[0]
    target.stop(inst)
    assert engine.called("POST", f"/containers/{inst.instance_id}/stop")[0]["query"]["t"] == "10"
    target.start(_release(tree, release_id="hello-service-2", image="registry.example/hello:2"))
    assert len(engine.build_contexts) == 1  # a given image is not built
    assert engine.called("POST", "/containers/create")[-1]["json"]["Image"] == "registry.example/hello:2"


def test_fake_engine_build_error_is_a_deploy_error(engine: FakeDockerEngine, tmp_path: Path) -> None:
    engine.fail_build = "pip install failed: no matching distribution"
    with pytest.raises(DeployError, match="docker build of noa/hello-service.*no matching distribution"):
        DockerTarget(base_url=engine.url).start(_release(tmp_path / "tree"))
    assert engine.containers == {}


def test_no_engine_is_skipped_not_ok(tmp_path: Path) -> None:
    target = DockerTarget(base_url=f"unix://{tmp_path}/no-docker.sock")
    avail = target.availability()
    assert avail.status == "skipped" and avail.reason.startswith("skipped: no Docker engine reachable")
    with pytest.raises(TargetUnavailable, match="^skipped: no Docker engine reachable"):
        target.start(_release(tmp_path / "tree"))


def test_generated_dockerfile_needs_a_run_command(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no run.command"):
        generated_dockerfile(_release(tmp_path / "tree", command=()))
