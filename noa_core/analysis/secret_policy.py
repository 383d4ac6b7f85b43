"""How severe a detect-secrets hit is, and why: the secrets policy.

detect-secrets reports two very different things under one name. Provider formats (a
PEM private key, ``AKIA...`` AWS keys, ``ghp_`` GitHub tokens, a URL with a password...)
are precise: a match is almost always a credential. Entropy detectors (``Hex`` and
``Base64 High Entropy String``) and the keyword detector match any random-looking string
or any ``password = "..."``: UUIDs, hashes and test vectors. Rating both ``high`` made a
UUID library fail the security gate. So every hit gets a *kind* and a severity from it:

============== ================================== ======================= ==================
kind           detectors                          shipped code            test file/fixture
============== ================================== ======================= ==================
``provider``   private keys, cloud, VCS, chat,    high                    high
               payment, registry tokens, basic
               auth / connection strings
``token``      JSON Web Token                     medium                  low
``weak``       entropy strings, secret keyword,   low                     info
               public IPv4
============== ================================== ======================= ==================

A JWT is a bearer credential (service keys of several platforms are long-lived JWTs),
but JWT libraries carry sample tokens in their tests, and the issuer is unknown: medium
in shipped code, low in tests. A detector this table does not know yet counts as
``provider`` (the safe side). Test files and fixtures are recognised by
:mod:`noa_core.sourcetree.test_paths`.

The security gate (:func:`noa_core.stages.gates.security_gate`) counts a secrets finding
as a *committed secret* when it is at least ``medium`` and not ``allowed``; ``low`` and
``info`` findings are reported and never fail it (unless ``gates.max_severity`` is set
below them).

Allow-lists. Three things can waive a finding: a ``pragma: allowlist secret`` comment on
its line, the project's ``.secrets.baseline`` (detect-secrets' format: matched on file,
type and the SHA-1 of the value, like detect-secrets does; entries audited as
``is_secret: true`` never waive), and ``security.secrets.allow`` in ``noa.yaml`` (path
glob, optional type, a reason). All three live in the *received* tree, so whoever wrote
the tree wrote its allow-list: a hostile drop could hide a real key behind any of them.
Hence:

* ``token`` and ``weak`` findings that are allow-listed are reported as ``allowed`` at
  ``info``, with the reason; they never fail the gate.
* ``provider`` findings are never waived by the tree: allow-listed, they are reported at
  ``medium`` (the reason says which list named them) and still count as committed
  secrets. A project that must ship such a key (a TLS library's test certificate) says
  so in a place a reviewer sees: ``gates: {fail_on_secrets: false}``, which changes the
  gate's rule as printed in every report; the medium findings then pass the default
  ``max_severity: medium``, while an unlisted provider key (high) still fails.

Nothing here sees a secret's value: the worker compares baseline hashes itself and
returns only type, line and booleans.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Literal

from noa_core.sourcetree.test_paths import why_test_file
from noa_core.manifest import SECRET_TYPES

__all__ = ["KNOWN_TYPES", "PROVIDER_TYPES", "TOKEN_TYPES", "WEAK_TYPES", "AllowRule", "Baseline",
           "Verdict", "is_committed_secret", "judge", "kind_of", "parse_baseline"]

Kind = Literal["provider", "token", "weak"]
SecretSeverity = Literal["info", "low", "medium", "high"]

TOKEN_TYPES: frozenset[str] = frozenset({"JSON Web Token"})
WEAK_TYPES: frozenset[str] = frozenset({
    "Hex High Entropy String", "Base64 High Entropy String", "Secret Keyword", "Public IP (ipv4)",
})
#: Every type detect-secrets reports (a test checks this against the installed plugins).
KNOWN_TYPES: frozenset[str] = frozenset(SECRET_TYPES)
#: Everything else: private keys, cloud, VCS, chat, payment and registry tokens, basic auth.
PROVIDER_TYPES: frozenset[str] = KNOWN_TYPES - TOKEN_TYPES - WEAK_TYPES

_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
BASELINE_MAX_BYTES = 8 * 1024 * 1024


def kind_of(secret_type: str) -> Kind:
    if secret_type in WEAK_TYPES:
        return "weak"
    if secret_type in TOKEN_TYPES:
        return "token"
    return "provider"


@dataclass(frozen=True)
class AllowRule:
    """One ``security.secrets.allow`` entry of noa.yaml; ``index`` is its place in the list."""

    path: str
    type: str | None
    reason: str
    index: int = 0

    def matches(self, rel: str, secret_type: str) -> bool:
        return (self.type is None or self.type == secret_type) and fnmatch.fnmatchcase(rel, self.path)


@dataclass(frozen=True)
class Verdict:
    severity: SecretSeverity
    reason: str
    allowed: bool = False


@dataclass(frozen=True)
class Baseline:
    """A ``.secrets.baseline``: per file, the (type, hashed_secret) pairs it waives."""

    entries: dict[str, list[tuple[str, str]]]
    path: str

    def for_file(self, rel: str) -> list[tuple[str, str]]:
        return self.entries.get(rel, [])


def parse_baseline(raw: bytes, path: str) -> Baseline:
    """Parse detect-secrets' baseline JSON; :class:`ValueError` with a one-line reason if malformed."""
    if len(raw) > BASELINE_MAX_BYTES:
        raise ValueError(f"{path}: larger than {BASELINE_MAX_BYTES // (1024 * 1024)} MiB")
    try:
        doc: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not JSON ({type(exc).__name__})") from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: no 'results' mapping (not a detect-secrets baseline)")
    entries: dict[str, list[tuple[str, str]]] = {}
    for filename, secrets in results.items():
        if not isinstance(filename, str) or not isinstance(secrets, list):
            raise ValueError(f"{path}: results[{filename!r}] is not a list")
        rel = filename.removeprefix("./")
        for s in secrets:
            if not isinstance(s, dict) or not isinstance(s.get("type"), str) \
                    or not isinstance(s.get("hashed_secret"), str):
                raise ValueError(f"{path}: an entry of {rel!r} lacks 'type' or 'hashed_secret'")
            if s.get("is_secret") is True:  # audited as a real secret: never a waiver
                continue
            entries.setdefault(rel, []).append((s["type"], s["hashed_secret"].lower()))
    return Baseline(entries, path)


def judge(secret_type: str, rel: str, *, pragma: bool = False, baselined: bool = False,
          rule: AllowRule | None = None, baseline_path: str = ".secrets.baseline") -> Verdict:
    """Severity of one hit of ``secret_type`` in file ``rel``, with the reason (see the module doc)."""
    kind = kind_of(secret_type)
    waiver = None
    if baselined:
        waiver = f"listed in {baseline_path}"
    elif rule is not None:
        waiver = f"allowed by noa.yaml security.secrets.allow[{rule.index}] ({rule.reason})"
    elif pragma:
        waiver = "line marked 'pragma: allowlist secret'"
    if kind == "provider":
        if waiver:
            return Verdict("medium", f"{waiver}, but a provider-format secret is never waived by the "
                                     "received tree: medium, still a committed secret")
        test_rule = why_test_file(rel)
        suffix = f", even in a test file ({test_rule})" if test_rule else ""
        return Verdict("high", f"provider-format secret ({secret_type}): high{suffix}")
    if waiver:
        return Verdict("info", waiver, allowed=True)
    where = _test_context(rel, baseline_path)
    if kind == "token":
        if where:
            return Verdict("low", f"JSON Web Token in {where}, likely a test vector: low")
        return Verdict("medium", "JSON Web Token in shipped code, a bearer credential of unknown issuer: "
                                 "medium, a committed secret")
    what = "keyword-only match" if secret_type == "Secret Keyword" else \
        "public IP address, not a secret" if secret_type.startswith("Public IP") else "entropy-only match"
    if where:
        return Verdict("info", f"{what} in {where}: informational")
    return Verdict("low", f"{what} (no provider format): low")


def _test_context(rel: str, baseline_path: str) -> str | None:
    if rel == baseline_path:
        return "the secrets baseline itself (it holds hashes)"
    rule = why_test_file(rel)
    return f"a test file ({rule})" if rule else None


def is_committed_secret(finding: dict[str, Any]) -> bool:
    """Does this finding count against ``fail_on_secrets``? Secrets at medium or above, not allowed."""
    return (finding.get("analyzer") == "secrets" and not finding.get("allowed")
            and _RANK.get(str(finding.get("severity")), 4) >= _RANK["medium"])
