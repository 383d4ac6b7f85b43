"""The validate stage: ``noa.yaml`` against the model *and* the published JSON schema, and ruff's
blocking rules (``E9,F63,F7,F82``: syntax errors, undefined names - the set GitHub's Python starter
workflow fails on), ``--isolated`` so the project's config cannot widen or silence them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from noa_core.errors import NoaError
from noa_core.manifest import MANIFEST_FILENAME, SCHEMA_PATH, load_manifest
from noa_core.swarm.python_lint import find_ruff

#: ruff rules that fail validation (the rest of lint is the swarm's business)
BLOCKING_RUFF_RULES = "E9,F63,F7,F82"
LINT_TIMEOUT_S = 300.0


def schema_errors(manifest_path: Path) -> list[str]:
    """Validate the raw YAML against ``schemas/noa.schema.json`` (the published contract)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))][:20]


def blocking_lint(tree: Path) -> dict[str, Any]:
    ruff = find_ruff()
    if ruff is None:
        return {"status": "skipped", "reason": "skipped: ruff is not installed"}
    if not any(tree.rglob("*.py")):
        return {"status": "skipped", "reason": "skipped: no Python files to lint"}
    argv = [ruff, "check", "--isolated", "--no-cache", "--select", BLOCKING_RUFF_RULES, "--output-format",
            "json", "--exit-zero", "."]
    proc = subprocess.run(argv, cwd=tree, capture_output=True, timeout=LINT_TIMEOUT_S, check=False,
                          stdin=subprocess.DEVNULL)
    try:
        findings = json.loads(proc.stdout or b"[]")
    except ValueError:
        return {"status": "failed", "reason": f"ruff gave no JSON (exit {proc.returncode}): "
                                              f"{proc.stderr.decode('utf-8', 'replace')[-300:]}"}
    shown = [{"code": f.get("code"), "file": str(f.get("filename", "")).removeprefix(str(tree) + "/"),
              "line": (f.get("location") or {}).get("row"), "message": f.get("message")} for f in findings[:20]]
    return {"status": "failed" if findings else "passed", "findings": len(findings), "first": shown,
            "rules": BLOCKING_RUFF_RULES}




def validate_tree(tree: str) -> dict[str, Any]:
    """Manifest (model + JSON schema) and blocking lint; ``{"status", "reason", ...}``."""
    root = Path(tree)
    path = root / MANIFEST_FILENAME
    if not path.is_file():
        return {"status": "failed", "reason": f"no {MANIFEST_FILENAME} (run `noa drop` to adapt the project)",
                "manifest": None}
    try:
        manifest = load_manifest(path)
    except NoaError as exc:
        return {"status": "failed", "reason": exc.one_line(), "manifest": None}
    schema = schema_errors(path)
    lint = blocking_lint(root)
    failed = []
    if schema:
        failed.append(f"schema: {schema[0]}")
    if lint["status"] == "failed":
        failed.append(f"lint: {lint.get('findings', 0)} blocking finding(s)" if "findings" in lint
                      else f"lint: {lint['reason']}")
    return {"status": "failed" if failed else "passed", "reason": "; ".join(failed),
            "manifest": manifest.model_dump(mode="json"), "schema_errors": schema, "lint": lint}


__all__ = ["BLOCKING_RUFF_RULES", "blocking_lint", "schema_errors", "validate_tree"]
