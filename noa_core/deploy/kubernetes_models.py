"""Validate the Kubernetes manifests NOA writes against the ``kubernetes`` client's OpenAPI models.

No cluster runs here, so nothing would reject a misspelt field (``readinesProbe``) or a
wrong type (``replicas: "1"``) before a user's cluster does. :func:`manifest_errors`
walks a manifest (a plain dict in the API's shape) along the generated model classes of
the installed ``kubernetes`` client (``openapi_types`` / ``attribute_map``): every key must
be a field of its model, every value of the field's type (``int-or-string`` fields are
``object``), and the models' own client-side validation (required fields such as a
container's ``name``) must accept it. :func:`check_manifest` raises
:class:`ManifestError` with every problem, each as a JSON-path.

Prefect-free; imports the ``kubernetes`` client lazily.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from noa_core.deploy.interface import DeployError

__all__ = ["ManifestError", "check_manifest", "manifest_errors", "model_name"]

_LIST = re.compile(r"^(?:List|list)\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict|dict)[\[(]str, (.+)[\])]$")


class ManifestError(DeployError):
    """A manifest does not fit the Kubernetes API models."""


def model_name(manifest: Mapping[str, Any]) -> str:
    """``apps/v1`` + ``Deployment`` -> ``V1Deployment`` (the client's model class name)."""
    version = str(manifest.get("apiVersion", "")).rsplit("/", 1)[-1]
    kind = str(manifest.get("kind", ""))
    if not version or not kind:
        raise ManifestError("manifest without apiVersion or kind")
    return version[:1].upper() + version[1:] + kind


def _models() -> Any:
    from kubernetes.client import models

    return models


def _walk(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list ({type_name}), got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _walk(item, m.group(1), f"{path}[{i}]", errors)
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping ({type_name}), got {type(value).__name__}")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                errors.append(f"{path}: key {k!r} is not a string")
            _walk(v, m.group(1), f"{path}.{k}", errors)
        return
    scalar = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "datetime": (str,),
              "date": (str,)}
    if type_name in scalar:
        ok = isinstance(value, scalar[type_name]) and not (type_name in ("int", "float") and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name == "object":  # int-or-string, quantities, free-form
        if not isinstance(value, (str, int, float, dict, list)) or isinstance(value, bool):
            errors.append(f"{path}: expected a string or a number, got {type(value).__name__}")
        return
    cls = getattr(_models(), type_name, None)
    if cls is None:
        errors.append(f"{path}: no model {type_name} in this kubernetes client")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    by_json = {v: k for k, v in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            close = difflib.get_close_matches(str(key), list(by_json), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{path}.{key}: not a field of {type_name}{hint}")
            continue
        _walk(v, cls.openapi_types[attr], f"{path}.{key}", errors)


def manifest_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Every way ``manifest`` does not fit the client's models (empty when it fits)."""
    from kubernetes.client import ApiClient

    name = model_name(manifest)
    if getattr(_models(), name, None) is None:
        return [f"$: no model {name} for apiVersion {manifest.get('apiVersion')!r} kind {manifest.get('kind')!r}"]
    errors: list[str] = []
    _walk(dict(manifest), name, "$", errors)
    if not errors:
        try:  # the models' own client-side validation: required fields, enum-like checks
            ApiClient().deserialize(json.dumps(manifest), name, "application/json")
        except ValueError as exc:  # pydantic's ValidationError is one
            text = " ".join(line.strip() for line in str(exc).splitlines() if "errors.pydantic.dev" not in line)
            errors.append(f"$: {name}: {text}")
    return errors


def check_manifest(manifest: Mapping[str, Any]) -> None:
    errors = manifest_errors(manifest)
    if errors:
        raise ManifestError(f"{manifest.get('kind')} {(manifest.get('metadata') or {}).get('name')}: "
                            + "; ".join(errors))
