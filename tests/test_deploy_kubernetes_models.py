"""Every Kubernetes manifest NOA writes fits the installed ``kubernetes`` client's OpenAPI
models (no cluster runs here, so this is what catches a misspelt field or a wrong type)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from noa_core.deploy.interface import Release
from noa_core.deploy.kubernetes_models import (
    ManifestError,
    check_manifest,
    manifest_errors,
    model_name,
)
from noa_core.deploy.kubernetes_target import deployment_manifest, service_manifest


def _release(**over: Any) -> Release:
    fields: dict[str, Any] = {"app": "Hello_Service", "release_id": "hello-service-1.0.0-3f2a9c1d-20261204",
                              "version": "1.0.0", "source": "/nowhere", "content_hash": "3f" * 32,
                              "command": ("python", "-m", "hello_service.server"), "image": "noa/hello:1",
                              "env": {"GREETING": "hi", "PORT": "9"}, "health_timeout_s": 0.5,
                              "health_interval_s": 2.0}
    fields.update(over)
    return Release(**fields)


MANIFESTS = {
    "deployment": lambda: deployment_manifest(_release(), namespace="noa"),
    "deployment, no env, 3 replicas, own resources": lambda: deployment_manifest(
        _release(env={}), namespace="default", replicas=3,
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}),
    "service NodePort": lambda: service_manifest(_release(), namespace="noa"),
    "service ClusterIP": lambda: service_manifest(_release(), namespace="noa", service_type="ClusterIP"),
}


@pytest.mark.parametrize("which", list(MANIFESTS))
def test_every_manifest_noa_writes_fits_the_kubernetes_models(which: str) -> None:
    manifest = MANIFESTS[which]()
    assert manifest_errors(manifest) == []
    check_manifest(manifest)


def test_a_misspelt_field_a_wrong_type_and_a_missing_required_field_each_fail() -> None:
    good = deployment_manifest(_release(), namespace="noa")
    assert model_name(good) == "V1Deployment"
    typo = copy.deepcopy(good)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert manifest_errors(typo) == [("$.spec.template.spec.containers[0].readinesProbe: not a field of V1Container "
                                     "(did you mean 'readinessProbe'?)")]
    wrong = copy.deepcopy(good)
    wrong["spec"]["replicas"] = "2"
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = True
    assert manifest_errors(wrong) == ["$.spec.replicas: expected int, got str '2'",
                                      ("$.spec.template.spec.containers[0].ports[0].containerPort: expected int, "
                                      "got bool True")]
    missing = copy.deepcopy(good)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    (err,) = manifest_errors(missing)
    assert err.startswith("$: V1Deployment:") and "V1Container" in err and "name" in err
    with pytest.raises(ManifestError, match="Deployment hello-service-1-0-0-3f2a9c1d-20261204: .*readinesProbe"):
        check_manifest(typo)
    svc = service_manifest(_release(), namespace="noa")
    svc["spec"]["ports"][0]["tragetPort"] = svc["spec"]["ports"][0].pop("targetPort")
    assert manifest_errors(svc) == [("$.spec.ports[0].tragetPort: not a field of V1ServicePort "
                                    "(did you mean 'targetPort'?)")]
    assert manifest_errors({"apiVersion": "v1", "kind": "Servise"})[0].startswith("$: no model V1Servise")
