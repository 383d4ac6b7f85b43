"""The Kubernetes target: each release is a Deployment and a Service, through the kubernetes client.

* **objects** (:func:`deployment_manifest`, :func:`service_manifest`, plain dicts in the
  API's shape): Deployment ``<release id>`` (``replicas``, labels ``app.kubernetes.io/name``
  / ``noa.release``, one container with the release's image, ``run.port_env`` = 8000,
  readiness and liveness probes on ``run.health.path``, resource limits, a non-root
  security context) and a Service of the same name selecting that release's pods
  (``NodePort`` by default, so NOA can reach it from outside the cluster; ``ClusterIP``
  for an in-cluster router).
* **apply**: create, or on 409 Conflict patch (strategic merge) - ``AppsV1Api`` and
  ``CoreV1Api``.
* **rollout watch** (:meth:`KubernetesTarget.wait_rollout`): reads the Deployment's status
  until ``status.observedGeneration >= metadata.generation`` and ``updatedReplicas`` and
  ``readyReplicas`` reach ``spec.replicas`` (like ``kubectl rollout status``); a
  ``Progressing=False`` condition (``ProgressDeadlineExceeded``) or the timeout fails it.
* **absent cluster**: no kubeconfig / in-cluster config -> ``skipped: no Kubernetes
  cluster configured``; a configured but unreachable API server -> ``skipped: Kubernetes
  API server <url> unreachable``.

The image must exist in a registry the cluster pulls from: ``release.image`` (e.g. built
and pushed with the Docker target); this target builds nothing. Prefect-free.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from noa_core.deploy.interface import (
    Availability,
    DeployError,
    DeployTarget,
    HealthResult,
    Instance,
    InstanceStatus,
    Release,
    TargetUnavailable,
)
from noa_core.deploy.local_target import http_health

__all__ = ["CONTAINER_PORT", "KubernetesTarget", "deployment_manifest", "k8s_name", "service_manifest"]

CONTAINER_PORT = 8000
SERVICE_PORT = 80
_DNS = re.compile(r"[^a-z0-9-]+")


def k8s_name(text: str) -> str:
    """An RFC 1123 label (what Deployment and Service names must be): <= 63 chars."""
    name = _DNS.sub("-", text.lower()).strip("-")
    return (name[:63].rstrip("-") or "app")


def _labels(release: Release) -> dict[str, str]:
    return {"app.kubernetes.io/name": k8s_name(release.app), "app.kubernetes.io/managed-by": "noa",
            "noa.release": k8s_name(release.release_id)}


def deployment_manifest(release: Release, *, namespace: str, replicas: int = 1,
                        resources: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``apps/v1`` Deployment of ``release``."""
    if not release.image:
        raise DeployError(f"{release.app}: the kubernetes target needs an image (release.image); "
                          "build and push one first, e.g. with the docker target")
    name = k8s_name(release.release_id)
    labels = _labels(release)
    probe_timeout = max(1, round(release.health_timeout_s))
    probe = {"httpGet": {"path": release.health_path, "port": CONTAINER_PORT},
             "timeoutSeconds": probe_timeout, "periodSeconds": max(1, round(release.health_interval_s))}
    env = [{"name": k, "value": v} for k, v in sorted(release.env.items()) if k != release.port_env]
    env.append({"name": release.port_env, "value": str(CONTAINER_PORT)})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {"noa.content-hash": release.content_hash, "noa.version": release.version}},
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 3, "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"noa.release": labels["noa.release"]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": k8s_name(release.app), "image": release.image, "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                        "env": env, "readinessProbe": {**probe, "failureThreshold": 3},
                        "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 5},
                        "resources": dict(resources or {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                        "limits": {"cpu": "1", "memory": "1Gi"}}),
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


def service_manifest(release: Release, *, namespace: str, service_type: str = "NodePort") -> dict[str, Any]:
    """The ``v1`` Service in front of ``release``'s pods."""
    labels = _labels(release)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": k8s_name(release.release_id), "namespace": namespace, "labels": labels},
        "spec": {"type": service_type, "selector": {"noa.release": labels["noa.release"]},
                 "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT, "protocol": "TCP"}]},
    }


class KubernetesTarget(DeployTarget):
    """Releases as Deployment + Service objects in one namespace of one cluster."""

    name: ClassVar[str] = "kubernetes"

    def __init__(self, *, namespace: str = "default", kubeconfig: str | None = None, context: str | None = None,
                 service_type: str = "NodePort", node_host: str | None = None, replicas: int = 1,
                 rollout_timeout_s: float = 180.0, request_timeout_s: float = 10.0, api_client: Any = None) -> None:
        if service_type not in ("NodePort", "ClusterIP", "LoadBalancer"):
            raise DeployError(f"service type {service_type!r} is not NodePort, ClusterIP or LoadBalancer")
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.context = context
        self.service_type = service_type
        self.node_host = node_host
        self.replicas = replicas
        self.rollout_timeout_s = rollout_timeout_s
        self.request_timeout_s = request_timeout_s
        self._api = api_client
        self._skip: str | None = None
        self._checked = False

    # ----------------------------------------------------------------- cluster
    def _load(self) -> Any:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            return config.new_client_from_config(config_file=self.kubeconfig, context=self.context,
                                                 persist_config=False)
        except (ConfigException, OSError, TypeError) as exc:
            try:  # inside a pod
                config.load_incluster_config()
                return client.ApiClient()
            except ConfigException:
                where = self.kubeconfig or "~/.kube/config (KUBECONFIG)"
                raise TargetUnavailable(f"skipped: no Kubernetes cluster configured ({where}: "
                                        f"{' '.join(str(exc).split())[:200]})") from None

    @property
    def api(self) -> Any:
        """The ``kubernetes.client.ApiClient``; :class:`TargetUnavailable` when there is no cluster."""
        if self._skip:
            raise TargetUnavailable(self._skip)
        if self._api is None:
            try:
                self._api = self._load()
            except TargetUnavailable as exc:
                self._skip = str(exc)
                raise
        if not self._checked:
            from kubernetes import client
            from urllib3.exceptions import HTTPError

            try:
                client.VersionApi(self._api).get_code(_request_timeout=self.request_timeout_s)
            except (HTTPError, OSError, client.ApiException) as exc:
                self._skip = (f"skipped: Kubernetes API server {self._server()} unreachable "
                              f"({type(exc).__name__})")
                raise TargetUnavailable(self._skip) from None
            self._checked = True
        return self._api

    def _server(self) -> str:
        return str(getattr(getattr(self._api, "configuration", None), "host", "") or "?")

    def availability(self) -> Availability:
        try:
            _ = self.api
        except TargetUnavailable as exc:
            return Availability("skipped", str(exc))
        return Availability("ok")

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @staticmethod
    def _error(what: str, exc: Exception) -> DeployError:
        reason = getattr(exc, "reason", "") or ""
        status = getattr(exc, "status", "")
        body = " ".join(str(getattr(exc, "body", "") or "").split())[:300]
        return DeployError(f"kubernetes {what} failed: {status} {reason} {body}".strip())

    # ----------------------------------------------------------------- apply
    def _apply(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        from kubernetes.client import ApiException

        name = body["metadata"]["name"]
        if kind == "Deployment":
            create, patch = self._apps().create_namespaced_deployment, self._apps().patch_namespaced_deployment
        else:
            create, patch = self._core().create_namespaced_service, self._core().patch_namespaced_service
        try:
            obj = create(self.namespace, body, field_manager="noa", _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status != 409:
                raise self._error(f"create {kind} {name}", exc) from None
            try:
                obj = patch(name, self.namespace, body, field_manager="noa", _request_timeout=self.request_timeout_s)
            except ApiException as exc2:
                raise self._error(f"patch {kind} {name}", exc2) from None
        return self.api.sanitize_for_serialization(obj)

    def start(self, release: Release) -> Instance:
        deployment = deployment_manifest(release, namespace=self.namespace, replicas=self.replicas)
        service = service_manifest(release, namespace=self.namespace, service_type=self.service_type)
        applied = self._apply("Deployment", deployment)
        svc = self._apply("Service", service)
        name = deployment["metadata"]["name"]
        host, port = self._address(svc)
        return Instance(app=release.app, release_id=release.release_id, target=self.name, instance_id=name,
                        host=host, port=port, started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        data={"namespace": self.namespace, "deployment": name, "service": svc["metadata"]["name"],
                              "generation": int((applied.get("metadata") or {}).get("generation") or 1),
                              "image": release.image, "health_path": release.health_path,
                              "health_timeout_s": release.health_timeout_s, "service_type": self.service_type})

    def _address(self, svc: Mapping[str, Any]) -> tuple[str, int]:
        spec = svc.get("spec") or {}
        port = (spec.get("ports") or [{}])[0]
        if self.service_type == "NodePort" and port.get("nodePort"):
            host = self.node_host or urlsplit(self._server()).hostname or "127.0.0.1"
            return host, int(port["nodePort"])
        if self.service_type == "LoadBalancer":
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if ingress:
                return str(ingress[0].get("ip") or ingress[0].get("hostname")), int(port.get("port", SERVICE_PORT))
        name = svc["metadata"]["name"]
        return f"{name}.{self.namespace}.svc", int(port.get("port", SERVICE_PORT))

    # ----------------------------------------------------------------- rollout
    def _read(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client import ApiException

        try:
            obj = self._apps().read_namespaced_deployment_status(name, self.namespace,
                                                                 _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(f"read Deployment {name}", exc) from None
        return self.api.sanitize_for_serialization(obj)

    @staticmethod
    def _rollout(dep: Mapping[str, Any]) -> tuple[str, str]:
        """(``done`` | ``progressing`` | ``failed``, why) - the checks of ``kubectl rollout status``."""
        meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("status") == "False":
                return "failed", f"{cond.get('reason', 'not progressing')}: {cond.get('message', '')}".strip(": ")
        want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        generation = int(meta.get("generation") or 0)
        observed = int(status.get("observedGeneration") or 0)
        if observed < generation:
            return "progressing", f"waiting for the controller to observe generation {generation} (at {observed})"
        updated = int(status.get("updatedReplicas") or 0)
        ready = int(status.get("readyReplicas") or 0)
        total = int(status.get("replicas") or 0)
        if updated < want:
            return "progressing", f"{updated} of {want} replicas updated"
        if total > updated:
            return "progressing", f"{total - updated} old replicas pending termination"
        if ready < want:
            return "progressing", f"{ready} of {want} updated replicas ready"
        return "done", f"{ready}/{want} replicas ready (generation {observed})"

    def wait_rollout(self, instance: Instance, *, timeout_s: float | None = None,
                     interval_s: float = 1.0) -> HealthResult:
        """Until the Deployment's rollout is complete; ``ok=False`` on failure or timeout."""
        t0 = time.monotonic()
        limit = self.rollout_timeout_s if timeout_s is None else timeout_s
        why = "not read"
        while True:
            dep = self._read(instance.instance_id)
            if dep is None:
                return HealthResult(False, None, "the Deployment is gone", time.monotonic() - t0)
            state, why = self._rollout(dep)
            if state != "progressing":
                return HealthResult(state == "done", None, why, time.monotonic() - t0)
            if time.monotonic() - t0 >= limit:
                return HealthResult(False, None, f"rollout not done after {limit:g}s: {why}", time.monotonic() - t0)
            time.sleep(interval_s)

    def wait_healthy(self, instance: Instance, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> HealthResult:
        rollout = self.wait_rollout(instance, timeout_s=timeout_s, interval_s=max(interval_s, 0.2))
        if not rollout.ok:
            return rollout
        return super().wait_healthy(instance, timeout_s=max(1.0, timeout_s - rollout.seconds), interval_s=interval_s)

    # ----------------------------------------------------------------- DeployTarget
    def health(self, instance: Instance, *, timeout_s: float | None = None) -> HealthResult:
        t = timeout_s if timeout_s is not None else float(instance.data.get("health_timeout_s", 2.0))
        return http_health(instance.host, instance.port, str(instance.data.get("health_path", "/health")), t)

    def status(self, instance: Instance) -> InstanceStatus:
        dep = self._read(instance.instance_id)
        if dep is None:
            return InstanceStatus("stopped", reason="the Deployment is gone")
        state, why = self._rollout(dep)
        if state == "failed":
            return InstanceStatus("crashed", reason=why)
        if state == "done":
            return InstanceStatus("running", reason=why)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        return InstanceStatus("running" if ready else "starting", reason=why)

    def stop(self, instance: Instance, *, drain_timeout_s: float = 10.0) -> None:
        from kubernetes.client import ApiException, V1DeleteOptions

        options = V1DeleteOptions(propagation_policy="Foreground",
                                  grace_period_seconds=max(0, round(drain_timeout_s)))
        name = instance.instance_id
        service = str(instance.data.get("service") or name)
        for what, call, obj in (("Service", self._core().delete_namespaced_service, service),
                                ("Deployment", self._apps().delete_namespaced_deployment, name)):
            try:
                call(obj, self.namespace, body=options, _request_timeout=self.request_timeout_s)
            except ApiException as exc:
                if exc.status != 404:
                    raise self._error(f"delete {what} {obj}", exc) from None
