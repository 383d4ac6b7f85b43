"""noa.yaml: the model, one-line errors, and the published JSON schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from noa_core.errors import BadInput, ManifestError
from noa_core.manifest import (MAX_MANIFEST_BYTES, SCHEMA_PATH, NoaManifest, dump_manifest, load_manifest, main,
                               manifest_json_schema, parse_manifest, schema_text)

FULL = """\
name: cachetools
version: "8.0.2"
language: python
sandbox: B
build:
  command: [python, -m, build, --sdist]
  artifacts: ["dist/*.tar.gz"]
test:
  command: [python, -m, pytest, -q]
  pythonpath: [src]
  timeout_s: 120
run:
  command: [python, -m, http.server]
  port_env: PORT
  health: {path: /health, timeout_s: 1.5, interval_s: 0.5}
deploy:
  strategy: canary
  canary_steps: [10, 50, 100]
  interval_s: 5
  max_error_rate: 0.02
  max_p99_ms: 250
swarm:
  languages: [python]
  pools: {python: python-swarm}
  shards: 2
"""


def write(tmp_path: Path, text: str | bytes, name: str = "noa.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_full_manifest_loads(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, FULL))
    assert m.name == "cachetools" and m.version == "8.0.2" and m.sandbox == "B"
    assert m.build.command == ["python", "-m", "build", "--sdist"]
    assert m.test.pythonpath == ["src"] and m.test.timeout_s == 120
    assert m.run.health.interval_s == 0.5
    assert m.deploy.canary_steps == [10, 50, 100]
    assert m.swarm.pools == {"python": "python-swarm"} and m.swarm.shards == 2


def test_minimal_manifest_has_sensible_defaults(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, "name: demo\n"))
    assert m.language == "python" and m.version is None and m.sandbox is None
    assert m.build.command is None and m.build.artifacts == []
    assert m.test.command is None and m.test.timeout_s > 0
    assert m.run.port_env == "PORT" and m.run.health.path == "/health"
    assert m.deploy.strategy == "canary" and m.deploy.canary_steps == [5, 25, 50, 100]
    assert set(m.swarm.pools) == {"python", "rust", "go", "javascript"}


@pytest.mark.parametrize("text", [FULL, "name: demo\n"])
def test_dump_round_trips_with_stable_key_order(tmp_path: Path, text: str) -> None:
    m = parse_manifest(text)
    dumped = dump_manifest(m)
    assert dumped == dump_manifest(parse_manifest(dumped))
    assert load_manifest(write(tmp_path, dumped)) == m
    keys = [line.split(":")[0] for line in dumped.splitlines() if line and not line.startswith((" ", "-"))]
    assert keys == list(NoaManifest.model_fields)


@pytest.mark.parametrize(("text", "expected"), [
    ("name: demo\ntest:\n  command: pytest\n", "noa.yaml: test.command: Input should be a valid list"),
    ("version: '1'\n", "noa.yaml: name: Field required"),
    ("name: demo\nversion: 1.0\n", "noa.yaml: version: Input should be a valid string"),
    ("name: ../evil\n", "noa.yaml: name: String should match pattern"),
    ("name: demo\nlanguage: cobol\n", "noa.yaml: language: Input should be 'python', 'rust', 'go', 'javascript' or 'other'"),
    ("name: demo\nsandbox: D\n", "noa.yaml: sandbox: Input should be 'A', 'B' or 'C'"),
    ("name: demo\nbuild: {command: [make], colour: red}\n", "noa.yaml: build.colour: Extra inputs are not permitted"),
    ("name: demo\nrunn: {}\n", "noa.yaml: runn: Extra inputs are not permitted"),
    ("name: demo\ntest: {timeout_s: '30'}\n", "noa.yaml: test.timeout_s: Input should be a valid number"),
    ("name: demo\ntest: {timeout_s: -1}\n", "noa.yaml: test.timeout_s: Input should be greater than 0"),
    ("name: demo\ntest: {command: []}\n", "noa.yaml: test.command: List should have at least 1 item"),
    ("name: demo\ntest: {command: [pytest, 3]}\n", "noa.yaml: test.command.1: Input should be a valid string"),
    ("name: demo\ntest: {pythonpath: [../up]}\n", "noa.yaml: test.pythonpath: path '../up' must stay inside"),
    ("name: demo\ndeploy: {strategy: yolo}\n", "noa.yaml: deploy.strategy: Input should be 'blue-green' or 'canary'"),
    ("name: demo\ndeploy: {canary_steps: [5, 50, 25, 100]}\n",
     "noa.yaml: deploy.canary_steps: steps must be strictly increasing"),
    ("name: demo\ndeploy: {canary_steps: [5, 50]}\n", "noa.yaml: deploy.canary_steps: the last step must be 100"),
    ("name: demo\ndeploy: {max_p99_ms: .inf}\n", "noa.yaml: deploy.max_p99_ms: Input should be a finite number"),
    ("name: demo\nrun: {health: {path: health}}\n", "noa.yaml: run.health.path: String should match pattern"),
    ("name: demo\nswarm: {pools: {cobol: x}}\n", "noa.yaml: swarm.pools.cobol.[key]: Input should be"),
    ("name: [1, 2\n", "noa.yaml: line 2, column 1: invalid YAML:"),
    ("name: demo\n  bad: indent\n", "noa.yaml: line 2, column 6: invalid YAML: mapping values are not allowed here"),
    ("name: demo\n---\nname: again\n",
     "noa.yaml: line 2, column 1: invalid YAML: expected a single document in the stream but found another document"),
    ("- name: demo\n", "noa.yaml: the document must be a mapping, got list"),
    ("just a string\n", "noa.yaml: the document must be a mapping, got str"),
    ("", "noa.yaml: the document must be a mapping, got empty"),
    ("!!python/object/apply:os.system [echo pwned]\n",
     "noa.yaml: line 1, column 1: invalid YAML: could not determine a constructor"),
])
def test_invalid_manifest_is_one_line_naming_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert message.replace(str(path), "noa.yaml", 1).startswith(expected), message
    assert isinstance(info.value, BadInput) and info.value.exit_code == 2


def test_many_errors_report_the_first_and_a_count(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r": name: Field required \(and 2 more\)$"):
        load_manifest(write(tmp_path, "language: cobol\nextra: 1\n"))


def test_unreadable_too_big_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing\.yaml: cannot read: No such file"):
        load_manifest(tmp_path / "missing.yaml")
    with pytest.raises(ManifestError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        load_manifest(write(tmp_path, "name: demo\n" + "# x\n" * MAX_MANIFEST_BYTES))
    with pytest.raises(ManifestError, match=r"not UTF-8 \(byte 6\)"):
        load_manifest(write(tmp_path, b"name: \xff\xfe\n"))


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["name: demo", "build: {artifacts: *a8}"]
    started = time.perf_counter()
    with pytest.raises(ManifestError, match=r"build\.artifacts\.0: Input should be a valid string \(and \d+ more\)$"):
        load_manifest(write(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - started < 5  # 10**9 strings if expanded


def test_published_schema_file_equals_model_schema() -> None:
    published = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert published == manifest_json_schema(), "run: python -m noa_core.manifest --write-schema"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text()


def test_schema_accepts_valid_and_rejects_invalid_documents() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(FULL)))
    assert list(validator.iter_errors({"name": "demo", "test": {"command": "pytest"}}))
    assert list(validator.iter_errors({"name": "demo", "unknown": 1}))


def test_cli_writes_and_checks_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schemas" / "noa.schema.json"
    assert main(["--check-schema", "--schema-path", str(target)]) == 1
    assert main(["--write-schema", "--schema-path", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == SCHEMA_PATH.read_text(encoding="utf-8")
    assert main(["--check-schema", "--schema-path", str(target)]) == 0
    assert main(["--check-schema"]) == 0
    bad = write(tmp_path, "name: demo\ntest: {command: pytest}\n")
    capsys.readouterr()
    assert main(["--validate", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}: test.command: Input should be a valid list"
