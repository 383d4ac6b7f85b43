"""Check a ``--json`` document against the published schema of its result model (schemas/results/)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from noa_core.results.schemas import SCHEMA_DIR


def assert_matches_schema(doc: Any, model: str) -> None:
    """``doc`` (a parsed ``--json`` document) is valid against ``schemas/results/<model>.json``."""
    schema = json.loads((SCHEMA_DIR / f"{model}.json").read_text(encoding="utf-8"))
    errors = [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert not errors, f"not a valid {model}: " + "; ".join(errors[:5])
