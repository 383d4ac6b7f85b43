"""The ``noa.yaml`` manifest: how NOA builds, tests, runs and deploys one project.

The model is strict (``extra="forbid"``, no string-to-number coercion) because the
file may come from a hostile drop: anything NOA does not understand is refused with a
:class:`~noa_core.errors.ManifestError` whose message is one line naming the file and
the first bad field, e.g. ``noa.yaml: test.command: Input should be a valid list``.

The published JSON schema (``schemas/noa.schema.json``) is generated from the model;
regenerate it with ``python -m noa_core.manifest --write-schema`` (a test fails when
the file and the model disagree).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from noa_core.errors import ManifestError

MANIFEST_FILENAME = "noa.yaml"
MAX_MANIFEST_BYTES = 256 * 1024
SCHEMA_ID = "https://noa-ark-os.invalid/schemas/noa.schema.json"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "noa.schema.json"

Language = Literal["python", "rust", "go", "javascript", "other"]
SandboxHint = Literal["A", "B", "C"]
Strategy = Literal["blue-green", "canary"]

#: A project's name is also its directory under ``projects/`` in the workspace repository.
PROJECT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"
ProjectName = Annotated[str, StringConstraints(pattern=PROJECT_NAME_PATTERN)]
Arg = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Command = Annotated[list[Arg], Field(min_length=1, max_length=256)]
RelPath = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/\x00]")]
Seconds = Annotated[float, Field(gt=0, le=86_400)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _no_parent_refs(paths: list[str]) -> list[str]:
    for p in paths:
        if ".." in p.split("/"):
            raise ValueError(f"path {p!r} must stay inside the project (no '..')")
    return paths


class BuildConfig(_Section):
    """How to build the project; ``artifacts`` are globs relative to the project root."""

    command: Command | None = Field(None, description="argv of the build command; none means nothing to build")
    artifacts: list[RelPath] = Field(default_factory=list, description="globs of files the build produces")

    _check_artifacts = field_validator("artifacts")(_no_parent_refs)


class TestConfig(_Section):
    """How to run the project's tests."""

    __test__ = False  # not a pytest test class

    command: Command | None = Field(None, description="argv of the test command; none means the swarm picks one")
    pythonpath: list[RelPath] = Field(default_factory=list, description="directories added to PYTHONPATH")
    timeout_s: Seconds = Field(600.0, description="wall-clock limit of one test run")

    _check_pythonpath = field_validator("pythonpath")(_no_parent_refs)


class HealthConfig(_Section):
    path: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=1024)] = "/health"
    timeout_s: Seconds = Field(2.0, description="timeout of one health request")
    interval_s: Seconds = Field(1.0, description="pause between health requests")


class RunConfig(_Section):
    """How to start the service; it must listen on the port given in ``port_env``."""

    command: Command | None = Field(None, description="argv that starts the service; none means not a service")
    port_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")] = "PORT"
    health: HealthConfig = HealthConfig()


class DeployConfig(_Section):
    strategy: Strategy = "canary"
    canary_steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [5, 25, 50, 100], min_length=1, max_length=20,
        description="percent of traffic on the new version at each step; increasing, ends at 100")
    interval_s: Seconds = Field(30.0, description="observation time per canary step")
    max_error_rate: float = Field(0.01, ge=0.0, le=1.0, description="error ratio that fails a step")
    max_p99_ms: float = Field(500.0, gt=0, description="p99 latency (ms) that fails a step")
    max_latency_ratio: float = Field(2.0, gt=1.0, le=100.0,
                                     description="canary/stable latency ratio that fails a step")
    failure_limit: int = Field(1, ge=0, le=100, description="failed measurements in a row that are tolerated")
    require_traffic: bool = Field(False, description="a step that saw no canary traffic fails")
    monitor_s: float = Field(0.0, ge=0, le=86_400,
                             description="blue-green: watch the new release this long before stopping the old one")
    pause_at: list[Annotated[int, Field(ge=1, le=99)]] = Field(
        default_factory=list, max_length=20, description="canary weights after which a manual approval is needed")

    @field_validator("canary_steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError("steps must be strictly increasing")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps


def _default_pools() -> dict[Language, str]:
    return {"python": "python-swarm", "rust": "rust-swarm", "go": "go-swarm", "javascript": "javascript-swarm"}


class SwarmConfig(_Section):
    """Which languages' swarms test the project, and the Prefect work pool of each."""

    languages: list[Language] = Field(default_factory=list,
                                      description="swarms to run; empty means the project's language")
    pools: dict[Language, Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]] = Field(
        default_factory=_default_pools, description="Prefect work pool of each language's swarm")
    shards: int = Field(1, ge=1, le=64, description="test shards per swarm")


Severity = Literal["info", "low", "medium", "high", "critical"]


class GatesConfig(_Section):
    """The unified workflow's stage gates; a failed gate stops the later stages."""

    min_confidence: float = Field(0.3, ge=0.0, le=1.0,
                                  description="analysis: the code-drop confidence must reach this")
    min_pass_rate: float = Field(1.0, ge=0.0, le=1.0,
                                 description="testing: passed / (passed + failed + errors) must reach this")
    require_tests: bool = Field(False, description="testing: a project without tests fails the gate")
    max_regression_pct: float = Field(10.0, ge=0.0, le=10_000.0,
                                      description="performance: slowdown against the stored baseline that fails")
    max_severity: Severity = Field("medium", description="security: the highest finding severity allowed")
    fail_on_secrets: bool = Field(True, description="security: any committed secret fails the gate")
    build_required: bool = Field(True, description="build: a failed build fails the gate")


#: Every type detect-secrets 1.5 reports (noa_core.analysis.secret_policy sorts them into kinds;
#: a test checks the list against the installed detect-secrets).
SecretType = Literal[
    "AWS Access Key", "Artifactory Credentials", "Azure Storage Account access key", "Base64 High Entropy String",
    "Basic Auth Credentials", "Cloudant Credentials", "Discord Bot Token", "GitHub Token", "GitLab Token",
    "Hex High Entropy String", "IBM COS HMAC Credentials", "IBM Cloud IAM Key", "JSON Web Token",
    "Mailchimp Access Key", "NPM tokens", "OpenAI Token", "Private Key", "Public IP (ipv4)", "PyPI Token",
    "Secret Keyword", "SendGrid API Key", "Slack Token", "SoftLayer Credentials", "Square OAuth Secret",
    "Stripe Access Key", "Telegram Bot Token", "Twilio API Key",
]
SECRET_TYPES: tuple[str, ...] = get_args(SecretType)


class SecretAllowEntry(_Section):
    """One waiver of the secret scan. Provider-format secrets (private keys, cloud and VCS
    tokens, passwords in URLs) are never waived by it: they stay committed secrets, at medium."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/\x00\n\r]")] = Field(
        description="shell-style glob on the path from the project root ('*' also matches '/'), e.g. 'testdata/*'")
    type: SecretType | None = Field(None, description="detect-secrets type, e.g. 'Hex High Entropy String'; "
                                                      "none: any type")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00\n\r]+$")] = Field(
        description="why these matches are not secrets; shown in the report")


class SecretsPolicyConfig(_Section):
    """The project's own allow-list for the secret scan."""

    baseline: RelPath = Field(".secrets.baseline",
                              description="detect-secrets baseline whose entries are reported as allowed")
    allow: list[SecretAllowEntry] = Field(default_factory=list, max_length=500,
                                          description="waivers: path glob, optional type, reason")

    @field_validator("baseline")
    @classmethod
    def _baseline_inside(cls, value: str) -> str:
        return _no_parent_refs([value])[0]


class SecurityConfig(_Section):
    secrets: SecretsPolicyConfig = SecretsPolicyConfig()


Requirement = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00\n\r]+$")]
ExtraName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")]


class PythonEnvConfig(_Section):
    """The dropped project's own Python environment: what it is built from.

    Empty lists mean "what the project declares" (lock file, pyproject, setup.cfg/setup.py,
    requirement files, tox.ini), in NOA's order of trust."""

    enabled: bool = Field(True, description="false: the tests run with no environment (their verdicts are unknown)")
    sources: list[RelPath] = Field(default_factory=list, max_length=64,
                                   description="use exactly these lock or requirement files, in order")
    requirements: list[Requirement] = Field(default_factory=list, max_length=1024,
                                            description="extra PEP 508 requirements added on top")
    extras: list[ExtraName] = Field(default_factory=list, max_length=64,
                                    description="extras / dependency groups to use instead of the test/dev name heuristic")
    index_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = Field(
        None, description="the package index (simple API) for this project; default NOA's setting or PyPI")
    resolved_from: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        default_factory=list, max_length=64,
        description="written by NOA: what the environment was made from when this file was generated "
                    "(informational; `sources` is the override)")

    _check_sources = field_validator("sources")(_no_parent_refs)

    @field_validator("requirements")
    @classmethod
    def _valid_requirements(cls, reqs: list[str]) -> list[str]:
        for r in reqs:
            try:
                PackagingRequirement(r)
            except InvalidRequirement as exc:
                raise ValueError(f"{r!r} is not a PEP 508 requirement: {exc}") from None
        return reqs


class NoaManifest(_Section):
    """A project's ``noa.yaml``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              title="NOA ARK OS manifest (noa.yaml)")

    name: ProjectName
    version: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    language: Language = "python"
    sandbox: SandboxHint | None = Field(None, description="preferred sandbox; low confidence still means C")
    build: BuildConfig = BuildConfig()
    test: TestConfig = TestConfig()
    run: RunConfig = RunConfig()
    deploy: DeployConfig = DeployConfig()
    swarm: SwarmConfig = SwarmConfig()
    gates: GatesConfig = GatesConfig()
    security: SecurityConfig = SecurityConfig()
    python_env: PythonEnvConfig = PythonEnvConfig()


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    err = errors[0]
    loc = ".".join(str(part) for part in err["loc"]) or "(document)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_manifest(text: str, *, origin: str = MANIFEST_FILENAME) -> NoaManifest:
    """Validate manifest YAML ``text``; ``origin`` names it in error messages."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MANIFEST_BYTES:
        raise ManifestError(_one_line(f"{origin}: larger than {MAX_MANIFEST_BYTES} bytes"))
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        context = getattr(exc, "context", None)
        if context:
            problem = f"{context} {problem}"
        raise ManifestError(_one_line(f"{origin}: {where}invalid YAML: {problem}")) from None
    except RecursionError:
        raise ManifestError(_one_line(f"{origin}: invalid YAML: nested too deeply")) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ManifestError(_one_line(f"{origin}: the document must be a mapping, got {kind}"))
    try:
        return NoaManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_one_line(f"{origin}: {_first_error(exc)}")) from None


def load_manifest(path: Path, *, max_bytes: int = MAX_MANIFEST_BYTES) -> NoaManifest:
    """Read and validate ``path``; any problem is a one-line :class:`ManifestError`."""
    path = Path(path)
    origin = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ManifestError(_one_line(f"{origin}: cannot read: {exc.strerror or exc}")) from None
    if len(raw) > max_bytes:
        raise ManifestError(_one_line(f"{origin}: larger than {max_bytes} bytes"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(_one_line(f"{origin}: not UTF-8 (byte {exc.start})")) from None
    return parse_manifest(text, origin=origin)


def dump_manifest(manifest: NoaManifest) -> str:
    """YAML text of ``manifest``, keys in model order (stable), loadable by :func:`load_manifest`."""
    data = manifest.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def manifest_json_schema() -> dict[str, Any]:
    """The JSON schema of ``noa.yaml`` (draft 2020-12), as published in ``schemas/``."""
    schema = NoaManifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noa_core.manifest", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-schema", action="store_true", help="regenerate the published JSON schema")
    group.add_argument("--check-schema", action="store_true", help="exit 1 if the published schema is stale")
    group.add_argument("--validate", type=Path, metavar="NOA_YAML", help="validate one manifest file")
    parser.add_argument("--schema-path", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    if args.write_schema:
        args.schema_path.parent.mkdir(parents=True, exist_ok=True)
        args.schema_path.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {args.schema_path}", file=sys.stderr)
        return 0
    if args.check_schema:
        current = args.schema_path.read_text(encoding="utf-8") if args.schema_path.exists() else ""
        if current != schema_text():
            print(f"{args.schema_path} is stale: run python -m noa_core.manifest --write-schema", file=sys.stderr)
            return 1
        return 0
    try:
        load_manifest(args.validate)
    except ManifestError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
