"""The published JSON schemas of the flow results: ``schemas/results/<Model>.json``.

``python scripts/export_schemas.py`` (or ``python -m noa_core.results.schemas --write``)
regenerates them; ``--check`` exits 1 when a model changed and its schema was not
regenerated (a test runs the check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from noa_core.results.base import FlowResult

__all__ = ["SCHEMA_DIR", "check_schemas", "result_models", "schema_text", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "schemas" / "results"
SCHEMA_BASE = "https://noa-ark-os.invalid/schemas/results/"


def result_models() -> dict[str, type[FlowResult]]:
    """Every flow result model exported by :mod:`noa_core.results`, by class name."""
    from noa_core import results

    found = {name: getattr(results, name) for name in results.__all__}
    return {name: cls for name, cls in sorted(found.items())
            if isinstance(cls, type) and issubclass(cls, FlowResult) and cls is not FlowResult}


def schema_of(model: type[FlowResult]) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of what ``--json`` prints: the model's serialization form."""
    schema = model.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{SCHEMA_BASE}{model.__name__}.json", **schema}


def schema_text(model: type[FlowResult]) -> str:
    return json.dumps(schema_of(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every model's schema; remove schemas of models that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    models = result_models()
    written = []
    for name, model in models.items():
        path = directory / f"{name}.json"
        path.write_text(schema_text(model), encoding="utf-8")
        written.append(path)
    for stale in directory.glob("*.json"):
        if stale.stem not in models:
            stale.unlink()
    return written


def check_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """One line per schema that is missing, stale or left over; empty when all are current."""
    models = result_models()
    problems = []
    for name, model in models.items():
        path = directory / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != schema_text(model):
            problems.append(f"{path}: stale ({name} changed)")
    for extra in sorted(directory.glob("*.json")):
        if extra.stem not in models:
            problems.append(f"{extra}: no model {extra.stem}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/export_schemas.py",
                                     description="Write or check schemas/results/<Model>.json")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="regenerate the schemas (the default)")
    group.add_argument("--check", action="store_true", help="exit 1 when a schema is missing or stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema directory (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_schemas(args.dir)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run: python scripts/export_schemas.py", file=sys.stderr)
        return 1 if problems else 0
    for path in write_schemas(args.dir):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
