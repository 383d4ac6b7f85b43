"""Runs inside the isolation sandbox, in the project's work copy: a PEP 517 build of an
sdist and a wheel with the build backend installed beside NOA, or in a build environment
prepared before (the sandbox has no network to fetch build requirements).
Usage: python -I _pep517.py OUT RESULT [BUILD_ENV].

Writes a JSON result: {"sdist": name, "wheel": name} or {"error": ..., "missing": [...]}.
"""

import importlib
import json
import os
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version


def missing_requirements(reqs):
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging ships with NOA
        return []
    missing = []
    for text in reqs:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            missing.append(f"{text} (not a valid requirement)")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            missing.append(f"{text} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{text} (installed: {have})")
    return missing


def main():
    out, result_path = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        sys.path.insert(0, sys.argv[3])  # the prepared build environment wins over NOA's own packages
    cfg = {}
    if os.path.exists("pyproject.toml"):
        with open("pyproject.toml", "rb") as fh:
            cfg = tomllib.load(fh).get("build-system") or {}
    backend_name = cfg.get("build-backend") or "setuptools.build_meta:__legacy__"
    requires = cfg.get("requires") or ["setuptools>=40.8.0"]
    result = {"backend": backend_name, "requires": list(requires)}

    def finish(code):
        with open(result_path, "w") as fh:
            json.dump(result, fh)
        sys.exit(code)

    missing = missing_requirements(requires)
    if missing:
        result.update(error="build requirements not installed (builds run offline)", missing=missing)
        finish(3)
    for p in reversed(cfg.get("backend-path") or []):
        sys.path.insert(0, os.path.abspath(p))
    if backend_name.endswith(":__legacy__"):
        sys.path.insert(0, "")  # setup.py may import its neighbours, as with `python setup.py`
    module, _, attr = backend_name.partition(":")
    backend = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        backend = getattr(backend, part)
    os.makedirs(out, exist_ok=True)
    for kind in ("sdist", "wheel"):
        hook = getattr(backend, f"get_requires_for_build_{kind}", None)
        extra = missing_requirements(hook({}) if hook else [])
        if extra:
            result.update(error=f"requirements of the {kind} build not installed", missing=extra)
            finish(3)
        result[kind] = getattr(backend, f"build_{kind}")(out, {})
    finish(0)


if __name__ == "__main__":
    main()
