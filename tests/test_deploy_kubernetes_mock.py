"""The Kubernetes target against a FAKE API server (no cluster runs here).

The fake is an HTTP server on loopback answering the documented shapes of ``/version``,
``apps/v1`` Deployments (create, 409 AlreadyExists, strategic-merge patch, read status,
delete) and ``v1`` Services, and recording every call; a kubeconfig file points the real
kubernetes client at it with a bearer token. The fake's "controller" advances a
Deployment's status a step per read (observedGeneration, then updated and ready
replicas) so the rollout watch is exercised; a NodePort maps to a real HTTP server of
the test for the health check. What this does NOT exercise: a real scheduler, kubelet,
image pulls, probes, or kube-proxy.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from noa_core.deploy.interface import DeployError, Release, TargetUnavailable
from noa_core.deploy.kubernetes_target import (
    KubernetesTarget,
    deployment_manifest,
    k8s_name,
)

TOKEN = "fake-token-for-tests"


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return patch


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class FakeKubeAPI:
    """Deployments and Services in dicts, a one-step-per-read rollout, and a call log."""

    def __init__(self, node_port: int) -> None:
        self.node_port = node_port
        self.calls: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.stuck: set[str] = set()  # deployments whose rollout never finishes
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _go(self) -> None:
                url = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                call = {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body,
                        "auth": self.headers.get("Authorization"), "content_type": self.headers.get("Content-Type")}
                api.calls.append(call)
                if call["auth"] != f"Bearer {TOKEN}":
                    code, doc = 401, _status(401, "Unauthorized", "Unauthorized")
                else:
                    code, doc = api.handle(self.command, url.path, body)
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _go

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path.rstrip("/") == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.2", "gitCommit": "fake",
                         "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.4",
                         "compiler": "gc", "platform": "linux/amd64"}
        parts = path.strip("/").split("/")
        # /apis/apps/v1/namespaces/{ns}/deployments[/{name}[/status]]  or  /api/v1/namespaces/{ns}/services[/{name}]
        if parts[:3] == ["apis", "apps", "v1"]:
            rest = parts[3:]
        elif parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        else:
            return 404, _status(404, "NotFound", f"the server could not find {path}")
        if len(rest) < 3 or rest[0] != "namespaces":
            return 404, _status(404, "NotFound", path)
        ns, kind, name = rest[1], rest[2], (rest[3] if len(rest) > 3 else None)
        key = (kind, ns, name or (body or {}).get("metadata", {}).get("name", ""))
        obj = self.objects.get(key)
        if method == "POST" and name is None:
            if obj is not None:
                return 409, _status(409, "AlreadyExists", f'{kind}.apps "{key[2]}" already exists')
            obj = _merge(body, {"metadata": {"uid": str(uuid.uuid4()), "resourceVersion": "1", "generation": 1,
                                             "creationTimestamp": "2026-11-25T18:00:00Z"}})
            if kind == "deployments":
                obj["status"] = {}
            if kind == "services":
                obj["spec"]["clusterIP"] = "10.96.0.42"
                if obj["spec"].get("type") == "NodePort":
                    for p in obj["spec"]["ports"]:
                        p["nodePort"] = self.node_port
            self.objects[key] = obj
            return 201, obj
        if obj is None:
            return 404, _status(404, "NotFound", f'{kind} "{key[2]}" not found')
        if method == "PATCH":
            old_spec = obj.get("spec")
            obj = _merge(obj, body)
            if kind == "deployments" and obj.get("spec") != old_spec:
                obj["metadata"]["generation"] += 1
            self.objects[key] = obj
            return 200, obj
        if method == "GET":
            if kind == "deployments":
                self._advance(obj)
            return 200, obj
        if method == "DELETE":
            del self.objects[key]
            if kind == "services":  # the API answers a Service delete with the object
                return 200, obj
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": key[2]}}
        return 405, _status(405, "MethodNotAllowed", method)

    def _advance(self, dep: dict[str, Any]) -> None:
        """One controller step per read: observe the generation, then update, then become ready."""
        st, want, gen = dep["status"], dep["spec"].get("replicas", 1), dep["metadata"]["generation"]
        name = dep["metadata"]["name"]
        if st.get("observedGeneration", 0) < gen:
            dep["status"] = {"observedGeneration": gen, "replicas": want, "updatedReplicas": 0, "readyReplicas": 0,
                             "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated"}]}
        elif name in self.stuck:
            st["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                 "message": f'ReplicaSet "{name}-5d4f" has timed out progressing.'}]
        elif st.get("updatedReplicas", 0) < want:
            st["updatedReplicas"] = want
        else:
            st["readyReplicas"] = st["availableReplicas"] = want

    def called(self, method: str, suffix: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method and c["path"].endswith(suffix)]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, Path]]:
    app = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
    fake = FakeKubeAPI(app.server_address[1])
    fake.thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
        "users": [{"name": "noa", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "noa", "namespace": "apps"}}]}))
    yield fake, kubeconfig
    fake.server.shutdown()
    fake.server.server_close()
    app.shutdown()
    app.server_close()


def _release(**over: Any) -> Release:
    fields: dict[str, Any] = {"app": "hello_service", "release_id": "hello-service-1.0.0-3F2A9C1D", "version": "1.0.0",
                                  "source": "/nonexistent", "content_hash": "3f2a9c1d" * 8, "command": ("python", "-m", "x"),
                                  "port_env": "APP_PORT", "health_path": "/healthz", "env": {"GREETING": "hi"},
                                  "image": "registry.example/hello-service:1.0.0"}
    fields.update(over)
    return Release(**fields)


def test_fake_api_apply_rollout_health_status_stop(fake_api: tuple[FakeKubeAPI, Path]) -> None:
    fake, kubeconfig = fake_api
    target = KubernetesTarget(namespace="apps", kubeconfig=str(kubeconfig))
    assert target.availability().ok
    inst = target.start(_release())
    name = "hello-service-1-0-0-3f2a9c1d"
    (create,) = fake.called("POST", "/apis/apps/v1/namespaces/apps/deployments")
    dep = create["body"]
    assert create["auth"] == f"Bearer {TOKEN}" and create["query"]["fieldManager"] == ["noa"]
    assert dep["metadata"]["name"] == name and dep["metadata"]["labels"]["app.kubernetes.io/name"] == "hello-service"
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/hello-service:1.0.0"
    assert {"name": "APP_PORT", "value": "8000"} in container["env"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000}
    assert dep["spec"]["selector"]["matchLabels"] == {"noa.release": name}
    (svc,) = fake.called("POST", "/api/v1/namespaces/apps/services")
    assert svc["body"]["spec"]["type"] == "NodePort" and svc["body"]["spec"]["selector"] == {"noa.release": name}
    # NodePort on the API server's host; the rollout watch walks observedGeneration -> updated -> ready
    assert (inst.host, inst.port, inst.instance_id) == ("127.0.0.1", fake.node_port, name)
    result = target.wait_healthy(inst, timeout_s=20, interval_s=0.01)
    assert result.ok, result.reason
    reads = fake.called("GET", f"/deployments/{name}/status")
    assert len(reads) >= 3
    assert target.status(inst).state == "running"
    target.stop(inst, drain_timeout_s=3)
    deleted = [c["path"] for c in fake.calls if c["method"] == "DELETE"]
    assert deleted == [f"/api/v1/namespaces/apps/services/{name}", f"/apis/apps/v1/namespaces/apps/deployments/{name}"]
    assert fake.called("DELETE", f"/deployments/{name}")[0]["body"]["propagationPolicy"] == "Foreground"
    assert target.status(inst).state == "stopped"
    target.stop(inst)  # already gone: not an error


def test_fake_api_second_apply_patches_and_bumps_generation(fake_api: tuple[FakeKubeAPI, Path]) -> None:
    fake, kubeconfig = fake_api
    target = KubernetesTarget(namespace="apps", kubeconfig=str(kubeconfig))
    first = target.start(_release())
    assert target.wait_rollout(first, timeout_s=10, interval_s=0.01).ok
    again = target.start(_release(env={"GREETING": "hello"}))
    patches = fake.called("PATCH", "/deployments/hello-service-1-0-0-3f2a9c1d")
    assert len(patches) == 1 and patches[0]["content_type"] == "application/strategic-merge-patch+json"
    assert again.data["generation"] == 2
    state, why = target._rollout(fake.objects[("deployments", "apps", again.instance_id)])
    assert state == "progressing" and "generation 2" in why  # the controller has not seen it yet
    assert target.wait_rollout(again, timeout_s=10, interval_s=0.01).ok


def test_fake_api_stuck_rollout_fails_with_the_controllers_reason(fake_api: tuple[FakeKubeAPI, Path]) -> None:
    fake, kubeconfig = fake_api
    fake.stuck.add("hello-service-1-0-0-3f2a9c1d")
    target = KubernetesTarget(namespace="apps", kubeconfig=str(kubeconfig))
    inst = target.start(_release())
    result = target.wait_healthy(inst, timeout_s=10, interval_s=0.01)
    assert not result.ok and "ProgressDeadlineExceeded" in result.reason
    assert target.status(inst).state == "crashed"


def test_fake_api_errors_are_deploy_errors(fake_api: tuple[FakeKubeAPI, Path], tmp_path: Path) -> None:
    _, kubeconfig = fake_api
    with pytest.raises(DeployError, match="needs an image"):
        KubernetesTarget(namespace="apps", kubeconfig=str(kubeconfig)).start(_release(image=None))
    bad = json.loads(kubeconfig.read_text())
    bad["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "bad").write_text(json.dumps(bad))
    avail = KubernetesTarget(kubeconfig=str(tmp_path / "bad")).availability()
    assert avail.status == "skipped" and "unreachable" in avail.reason


def test_no_cluster_configured_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    target = KubernetesTarget(kubeconfig=str(tmp_path / "missing-kubeconfig"))
    avail = target.availability()
    assert avail.status == "skipped" and avail.reason.startswith("skipped: no Kubernetes cluster configured")
    with pytest.raises(TargetUnavailable, match="^skipped: no Kubernetes cluster configured"):
        target.start(_release())


def test_manifest_names_are_rfc1123_labels() -> None:
    assert k8s_name("Hello_Service 2.0!" + "x" * 80) == ("hello-service-2-0-" + "x" * 80)[:63]
    dep = deployment_manifest(_release(env={"APP_PORT": "1"}), namespace="ns", replicas=3)
    assert dep["spec"]["replicas"] == 3
    assert [e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "APP_PORT"] == [
        {"name": "APP_PORT", "value": "8000"}]
