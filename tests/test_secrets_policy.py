"""The secrets policy: severity by kind and place, allow-lists, reasons; real detect-secrets on real trees."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

try:
    from analysis_helpers import write_tree
except ImportError:  # tests/ turned into a package
    from tests.analysis_helpers import write_tree

from noa_core.analysis.interface import AnalyzerResult
from noa_core.analysis.secret_policy import KNOWN_TYPES
from noa_core.analysis.secrets_scan import SecretsAnalyzer
from noa_core.sourcetree.test_paths import why_test_file
from noa_core.manifest import GatesConfig
from noa_core.stages.gates import security_gate
from noa_core.stages.security import security_checks
from noa_core.stages.semgrep import SemgrepRun

# Random-looking hex, as UUID libraries and hash tests carry them (built here, not secrets).
UUID_HEX = hashlib.md5(b"uuid test vector").hexdigest()
SHA_HEX = hashlib.sha256(b"hash test vector").hexdigest()
APP_HEX = hashlib.sha1(b"app salt").hexdigest()


def _private_key_pem() -> str:
    """A real private key, generated now (no key literal in the repository)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def _jwt() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(hashlib.sha256(b"sig").digest()).rstrip(b"=").decode()
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': 'svc', 'role': 'service'})}.{sig}"


def _go_uuid_module(root: Path) -> Path:
    return write_tree(root, {
        "go.mod": "module example.org/uuid\n\ngo 1.19\n",
        "uuid.go": "package uuid\n\n// UUID is 16 bytes.\ntype UUID [16]byte\n",
        "uuid_test.go": ("package uuid\n\nimport \"testing\"\n\nvar vectors = []string{\n"
                         f"\t\"{UUID_HEX}\",\n\t\"{SHA_HEX}\",\n}}\n\n"
                         "func TestParse(t *testing.T) { _ = vectors }\n"),
    })


def _scan(tree: Path) -> AnalyzerResult:
    return SecretsAnalyzer(workers=1).analyze(tree)


def _gate(result: AnalyzerResult, gates: GatesConfig | None = None):  # noqa: ANN202 - Gate
    empty = SemgrepRun("skipped", "not run in this test", (), 0, 0, (), 0.0)
    rows, findings = security_checks({"secrets": result.as_dict()}, empty)
    return security_gate(findings, gates or GatesConfig()), rows


def _assert_never_shown(value: str, result: AnalyzerResult, *texts: str) -> None:
    needle = value.strip().splitlines()[1] if "PRIVATE KEY" in value else value
    blob = json.dumps(result.as_dict()) + "\n".join(texts)
    assert needle not in blob


def test_uuids_and_hashes_in_go_and_python_tests_are_informational(tmp_path: Path) -> None:
    tree = _go_uuid_module(tmp_path)
    write_tree(tree, {"tests/test_hashing.py": f'EXPECTED = "{SHA_HEX}"\n\ndef test_it():\n    assert EXPECTED\n'})
    result = _scan(tree)
    assert result.status == "ok", result.reason
    by_path = {(f.path, f.rule): f for f in result.findings}
    assert ("uuid_test.go", "Hex High Entropy String") in by_path
    assert ("tests/test_hashing.py", "Hex High Entropy String") in by_path
    assert {f.severity for f in result.findings} == {"info"}
    go = by_path[("uuid_test.go", "Hex High Entropy String")]
    assert go.reason == "entropy-only match in a test file (*_test.go): informational"
    assert "directory 'tests/'" in by_path[("tests/test_hashing.py", "Hex High Entropy String")].reason
    gate, rows = _gate(result)
    assert gate.passed is True and gate.reason == ""
    secrets_row = next(r for r in rows if r["check"] == "secrets")
    assert secrets_row["findings"] == len(result.findings) and "info" in secrets_row["reason"]
    assert result.data["committed"] == 0


def test_bare_entropy_in_app_code_is_low_and_passes_the_default_gate(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/settings.py": f'CACHE_SALT = "{APP_HEX}"\n'})
    result = _scan(tmp_path)
    [f] = result.findings
    assert (f.rule, f.severity, f.path) == ("Hex High Entropy String", "low", "app/settings.py")
    assert f.reason == "entropy-only match (no provider format): low"
    assert _gate(result)[0].passed is True
    strict, _ = _gate(result, GatesConfig(max_severity="info"))  # the same threshold rule as every finding
    assert strict.passed is False and "1 findings above info (secrets 1)" in strict.reason


def test_real_private_key_fails_the_gate_even_in_a_test_file_and_is_never_shown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    pem = _private_key_pem()
    tree = _go_uuid_module(tmp_path)
    write_tree(tree, {"testdata/server.key": pem})
    caplog.set_level(logging.DEBUG)
    result = _scan(tree)
    key = [f for f in result.findings if f.rule == "Private Key"]
    assert [(f.path, f.severity) for f in key] == [("testdata/server.key", "high")]
    assert key[0].reason == "provider-format secret (Private Key): high, even in a test file (directory 'testdata/')"
    gate, rows = _gate(result)
    assert gate.passed is False
    assert "1 committed secret(s): Private Key in testdata/server.key:1 (provider-format" in gate.reason
    out, err = capfd.readouterr()
    _assert_never_shown(pem, result, gate.reason, json.dumps(rows), caplog.text, out, err)


def test_jwt_is_a_committed_secret_in_app_code_and_low_in_tests(tmp_path: Path) -> None:
    token = _jwt()
    write_tree(tmp_path, {"svc/client.py": f'TOKEN = "{token}"\n', "spec/auth.spec.js": f'const t = "{token}";\n'})
    result = _scan(tmp_path)
    jwt = {f.path: f for f in result.findings if f.rule == "JSON Web Token"}
    assert jwt["svc/client.py"].severity == "medium" and jwt["spec/auth.spec.js"].severity == "low"
    gate, _ = _gate(result)
    assert gate.passed is False and "JSON Web Token in svc/client.py:1" in gate.reason
    _assert_never_shown(token, result, gate.reason)


def _baseline(entries: dict[str, list[tuple[str, str, int]]], *, is_secret: bool | None = None) -> str:
    results = {f: [{"type": t, "filename": f, "hashed_secret": hashlib.sha1(v.encode()).hexdigest(),
                    "is_verified": False, "line_number": n, **({"is_secret": is_secret} if is_secret is not None
                                                               else {})}
                   for t, v, n in hits] for f, hits in entries.items()}
    return json.dumps({"version": "1.5.0", "plugins_used": [], "filters_used": [], "results": results}, indent=2)


def _detect_secrets_baseline(tree: Path) -> None:
    """``detect-secrets scan --all-files > .secrets.baseline``, as the project's authors would run it."""
    out = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files"], cwd=tree,
                         capture_output=True, text=True, check=True, timeout=120).stdout
    (tree / ".secrets.baseline").write_text(out)


def test_secrets_baseline_waives_entropy_but_not_a_private_key(tmp_path: Path) -> None:
    pem = _private_key_pem()
    write_tree(tmp_path, {"app/settings.py": f'CACHE_SALT = "{APP_HEX}"\n', "deploy/key.pem": pem})
    _detect_secrets_baseline(tmp_path)
    listed = json.loads((tmp_path / ".secrets.baseline").read_text())["results"]
    assert set(listed) == {"app/settings.py", "deploy/key.pem"}
    write_tree(tmp_path, {"app/later.py": f'OTHER = "{SHA_HEX}"\n'})  # added after the baseline
    result = _scan(tmp_path)
    salt = next(f for f in result.findings if f.path == "app/settings.py")
    assert (salt.severity, salt.allowed, salt.reason) == ("info", True, "listed in .secrets.baseline")
    later = next(f for f in result.findings if f.path == "app/later.py")
    assert (later.severity, later.allowed) == ("low", False)
    key = next(f for f in result.findings if f.rule == "Private Key")
    assert key.severity == "medium" and not key.allowed
    assert key.reason.startswith("listed in .secrets.baseline, but a provider-format secret is never waived")
    gate, _ = _gate(result)
    assert gate.passed is False and "1 committed secret(s): Private Key in deploy/key.pem" in gate.reason
    # The documented way out for a key that must ship is a visible gate change, and only then.
    assert _gate(result, GatesConfig(fail_on_secrets=False))[0].passed is True
    assert result.data["allow_list"]["baseline"] == ".secrets.baseline"
    # The baseline's own hashes are hex strings: informational, not a low finding of the app.
    own = [f for f in result.findings if f.path == ".secrets.baseline"]
    assert own and {f.severity for f in own} == {"info"} and "secrets baseline itself" in own[0].reason
    _assert_never_shown(pem, result, gate.reason)


def test_baseline_entry_audited_as_a_real_secret_waives_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "app/settings.py": f'CACHE_SALT = "{APP_HEX}"\n',
        ".secrets.baseline": _baseline({"app/settings.py": [("Hex High Entropy String", APP_HEX, 1)]},
                                       is_secret=True)})
    salt = next(f for f in _scan(tmp_path).findings if f.path == "app/settings.py")
    assert (salt.severity, salt.allowed) == ("low", False)


def test_noa_yaml_allow_list_is_honoured_except_for_provider_formats(tmp_path: Path) -> None:
    pem = _private_key_pem()
    write_tree(tmp_path, {
        "noa.yaml": ("name: demo\nsecurity:\n  secrets:\n    allow:\n"
                     "      - {path: 'samples/*', type: Hex High Entropy String, reason: published sample digests}\n"
                     "      - {path: 'certs/*', reason: the TLS test certificate}\n"),
        "samples/digests.json": f'{{"sha1": "{APP_HEX}"}}\n',
        "certs/dev.key": pem,
        "lib/other.py": f'SALT = "{SHA_HEX}"\n',
    })
    result = _scan(tmp_path)
    by_path = {f.path: f for f in result.findings}
    sample = by_path["samples/digests.json"]
    assert sample.allowed and sample.severity == "info"
    assert sample.reason == "allowed by noa.yaml security.secrets.allow[0] (published sample digests)"
    cert = by_path["certs/dev.key"]
    assert cert.severity == "medium" and not cert.allowed
    assert cert.reason.startswith("allowed by noa.yaml security.secrets.allow[1] (the TLS test certificate), but")
    assert by_path["lib/other.py"].severity == "low"  # not named by any entry
    gate, rows = _gate(result)
    assert gate.passed is False and "Private Key in certs/dev.key" in gate.reason
    assert next(r for r in rows if r["check"] == "secrets")["reason"] == "1 medium, 1 low, 1 allowed"
    _assert_never_shown(pem, result, gate.reason)


def test_a_broken_allow_list_is_not_applied_and_says_so(tmp_path: Path) -> None:
    write_tree(tmp_path, {"noa.yaml": "name: demo\nsecurity: {secrets: {allow: [{path: '*'}]}}\n",
                          ".secrets.baseline": "{not json",
                          "app/settings.py": f'CACHE_SALT = "{APP_HEX}"\n'})
    result = _scan(tmp_path)
    notes = result.data["allow_list"]["notes"]
    assert any("noa.yaml allow-list not applied" in n and "reason: Field required" in n for n in notes)
    assert any("baseline not applied: .secrets.baseline: not JSON" in n for n in notes)
    assert next(f for f in result.findings if f.path == "app/settings.py").severity == "low"


def test_policy_knows_every_detect_secrets_type() -> None:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    assert set(get_mapping_from_secret_type_to_class()) == set(KNOWN_TYPES)


@pytest.mark.parametrize(("path", "rule"), [
    ("uuid_test.go", "*_test.go"), ("pkg/test_models.py", "test_*.py"), ("pkg/models_test.py", "*_test.py"),
    ("src/app.spec.ts", "*.spec.ts"), ("web/__tests__/a.js", "directory '__tests__/'"),
    ("internal/testdata/vectors.json", "directory 'testdata/'"), ("tests/fixtures/x.txt", "directory 'tests/'"),
    ("Fixtures/a.yaml", "directory 'Fixtures/'"), ("conftest.py", "conftest.py"),
    ("app/settings.py", None), ("latest/app.py", None), ("contest.go", None), ("testing.go", None),
])
def test_test_file_classifier(path: str, rule: str | None) -> None:
    assert why_test_file(path) == rule


def _files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and p.stat().st_size < 5e6)


def test_security_stage_passes_a_uuid_library_and_fails_a_planted_aws_key_without_printing_it(
        prefect_api_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.runtime import in_process_run
    from flows.stages import security_stage

    key = "AKIA" + "".join(chr(ord("A") + (7 * i) % 26) for i in range(12)) + "Q7X2"  # AWS format, built here
    clean = _go_uuid_module(tmp_path / "uuid")
    planted = _go_uuid_module(tmp_path / "uuid-leak")
    write_tree(planted, {"client_test.go": f'package uuid\n\nconst awsKey = "{key}"\n'})
    home = tmp_path / "home"
    with in_process_run():
        ok = asyncio.run(security_stage(project_dir=str(clean), home=str(home), project="uuid"))
        bad = asyncio.run(security_stage(project_dir=str(planted), home=str(home), project="uuid-leak"))

    assert ok["status"] == "passed", ok["details"]
    secrets_check = next(c for c in ok["data"]["checks"] if c["check"] == "secrets")
    assert secrets_check["status"] == "ok" and secrets_check["reason"] == "2 info"

    assert bad["status"] == "failed"
    assert "1 committed secret(s): AWS Access Key in client_test.go:3 (provider-format secret (AWS Access Key): " \
           "high, even in a test file (*_test.go))" in bad["details"]
    out, err = capfd.readouterr()
    assert key not in ok.model_dump_json() + bad.model_dump_json() + out + err
    assert key not in _files_text(home)  # change log, traces, registry
    with get_client(sync_client=True) as client:  # the stage tables in the Prefect UI
        tables = json.dumps([a.data for a in client.read_artifacts() if a.key and "uuid-leak" in a.key])
    assert "client_test.go: possible AWS Access Key in client_test.go - provider-format secret" in tables
    assert "entropy-only match in a test file (*_test.go): informational" in tables
    assert key not in tables
