"""npm registry metadata with an on-disk cache and an offline mode.

For one package at one installed version NOA wants: the latest version (the ``latest``
dist-tag), the deprecation message of the installed version, and its licence. Two small
documents answer that: ``GET /NAME/latest`` and ``GET /NAME/VERSION`` (a few KiB each).
The packument (``GET /NAME``), even abbreviated (``Accept: application/vnd.npm.install-v1+json``),
holds every version: 9.4 MB for ``@types/node``; it is used only for a package whose
installed version is unknown (no lock file, a range in package.json), and then only the
abbreviated form, for its dist-tags.

Answers are cached under ``NOA_HOME/cache/npm`` (one JSON file per URL, with the time it
was fetched) for ``ttl_s`` seconds. Offline (``offline=True`` or ``NOA_NPM_OFFLINE=1``)
only the cache answers, whatever its age, and a package not in it is
``skipped: offline, not cached``. When the registry stops answering during a run, the
rest of the run behaves as offline and says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from noa_core.errors import BadInput

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = "https://registry.npmjs.org/"
ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
DEFAULT_TTL_S = 24 * 3600.0

_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9._~-][a-z0-9._~-]*$", re.IGNORECASE)
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")


def registry_from_env(env: Mapping[str, str] | None = None) -> str:
    """``NOA_NPM_REGISTRY``, else npm's own ``npm_config_registry``, else registry.npmjs.org."""
    env = env if env is not None else os.environ
    url = (env.get("NOA_NPM_REGISTRY") or env.get("npm_config_registry") or DEFAULT_REGISTRY).strip()
    return url if url.endswith("/") else url + "/"


def offline_from_env(env: Mapping[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("NOA_NPM_OFFLINE", "").lower() in ("1", "true", "yes")


def valid_name(name: str) -> bool:
    return len(name) <= 214 and bool(_NAME.match(name))


def valid_version(version: str) -> bool:
    return bool(_VERSION.match(version))


def licence_of(doc: Mapping[str, Any]) -> str | None:
    """The SPDX expression of a version document: ``license`` as a string or ``{type}``,
    or the legacy ``licenses`` list."""
    value = doc.get("license")
    if isinstance(value, Mapping):
        value = value.get("type")
    if isinstance(value, str) and value.strip():
        return value.strip()
    legacy = doc.get("licenses")
    if isinstance(legacy, list):
        kinds = [str(x.get("type")) if isinstance(x, Mapping) else str(x) for x in legacy if x]
        if kinds:
            return " OR ".join(kinds)
    return None


@dataclass(frozen=True)
class PackageInfo:
    """What the registry says about ``name`` at ``version``; ``status`` ok | skipped | unknown."""

    name: str
    version: str | None
    status: str
    latest: str | None = None
    deprecated: str | None = None
    licence: str | None = None
    reason: str = ""
    source: str = ""  # network | cache | stale cache

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "status": self.status, "latest": self.latest,
                "deprecated": self.deprecated, "licence": self.licence, "reason": self.reason, "source": self.source}


@dataclass
class _Fetched:
    status: int | None  # HTTP status; None when not fetched
    doc: Any = None
    source: str = ""
    reason: str = ""


@dataclass
class NpmRegistry:
    """A caching client of one npm registry. Thread-safe; close it (or use ``with``)."""

    cache_dir: Path
    base_url: str = field(default_factory=registry_from_env)
    offline: bool = field(default_factory=offline_from_env)
    ttl_s: float = DEFAULT_TTL_S
    timeout_s: float = 10.0
    transport: httpx.BaseTransport | None = None

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.base_url):
            raise BadInput(f"npm registry URL must be http(s)://..., not {self.base_url!r}")
        self.base_url = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        self._lock = threading.Lock()
        self._down: str | None = None  # why the registry stopped answering during this run
        self._http: httpx.Client | None = None
        self.requests = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- public ----------------------------------------------------------------------

    def package(self, name: str, version: str | None) -> PackageInfo:
        """Latest version, deprecation and licence of ``name`` at ``version`` (None: unknown)."""
        if not valid_name(name):
            return PackageInfo(name, version, "skipped", reason="skipped: not a valid npm package name")
        if version is not None and not valid_version(version):
            return PackageInfo(name, version, "skipped", reason=f"skipped: {version!r} is not a registry version")
        latest = self._get(self._path(name, "latest"))
        if version is None:
            if latest.status is None:
                return PackageInfo(name, None, "skipped", reason=latest.reason)
            if latest.status == 404:  # a registry without /NAME/latest: the abbreviated packument has dist-tags
                latest = self._get(self._path(name), accept=ABBREVIATED)
                tags = latest.doc.get("dist-tags", {}) if isinstance(latest.doc, dict) else {}
                latest.doc = {"version": tags.get("latest")} if latest.status == 200 else latest.doc
            if latest.status != 200:
                return self._missing(name, None, latest)
            return PackageInfo(name, None, "unknown", latest=_str(latest.doc, "version"),
                               licence=licence_of(latest.doc),
                               reason="installed version unknown (no lock file entry): deprecation not checked",
                               source=latest.source)
        this = self._get(self._path(name, version))
        if this.status is None or latest.status is None:
            missing = this if this.status is None else latest
            return PackageInfo(name, version, "skipped", reason=missing.reason)
        if this.status != 200:
            return self._missing(name, version, this)
        deprecated = this.doc.get("deprecated") if isinstance(this.doc, dict) else None
        return PackageInfo(
            name, version, "ok",
            latest=_str(latest.doc, "version") if latest.status == 200 else None,
            deprecated=str(deprecated) if isinstance(deprecated, str) and deprecated else None,
            licence=licence_of(this.doc),
            source="stale cache" if "stale" in (this.source, latest.source) else this.source)

    # -- internals -------------------------------------------------------------------

    @staticmethod
    def _path(name: str, version: str | None = None) -> str:
        escaped = quote(name, safe="@")  # @scope/name -> @scope%2Fname, as npm's own client sends it
        return escaped if version is None else f"{escaped}/{quote(version, safe='')}"

    @staticmethod
    def _missing(name: str, version: str | None, got: _Fetched) -> PackageInfo:
        if got.status == 404:
            return PackageInfo(name, version, "unknown", reason="not in the registry (private, unpublished or a typo)",
                               source=got.source)
        return PackageInfo(name, version, "unknown", reason=got.reason or f"registry answered {got.status}",
                           source=got.source)

    def _cache_file(self, url: str, accept: str) -> Path:
        digest = hashlib.sha256(f"{accept}\n{url}".encode()).hexdigest()[:32]
        return self.cache_dir / digest[:2] / f"{digest}.json"

    def _read_cache(self, path: Path) -> dict[str, Any] | None:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and "fetched_at" in entry else None

    def _write_cache(self, path: Path, url: str, status: int, doc: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"url": url, "status": status, "fetched_at": time.time(), "doc": doc}),
                       encoding="utf-8")
        os.replace(tmp, path)

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=True,
                                          headers={"User-Agent": "noa-ark-os (npm metadata)"})
            return self._http

    def _get(self, path: str, *, accept: str = "application/json") -> _Fetched:
        url = self.base_url + path
        cache_file = self._cache_file(url, accept)
        cached = self._read_cache(cache_file)
        fresh = cached is not None and time.time() - float(cached["fetched_at"]) < self.ttl_s
        if cached is not None and fresh:
            return _Fetched(int(cached["status"]), cached.get("doc"), "cache")
        down = "offline" if self.offline else self._down
        if down is not None:
            if cached is not None:
                return _Fetched(int(cached["status"]), cached.get("doc"), "stale cache")
            return _Fetched(None, reason=f"skipped: {down}, not cached")
        try:
            self.requests += 1
            response = self._client().get(url, headers={"Accept": accept})
        except httpx.TransportError as exc:
            with self._lock:
                self._down = f"registry unreachable ({type(exc).__name__})"
            log.warning("npm registry %s unreachable: %s; using the cache only", self.base_url, type(exc).__name__)
            return self._get(path, accept=accept)
        if response.status_code in (200, 404):
            try:
                doc = response.json() if response.status_code == 200 else None
            except ValueError:
                return _Fetched(response.status_code, reason="registry answer is not JSON")
            self._write_cache(cache_file, url, response.status_code, doc)
            return _Fetched(response.status_code, doc, "network")
        if cached is not None:  # 5xx, 429...: an old answer beats none
            return _Fetched(int(cached["status"]), cached.get("doc"), "stale cache")
        return _Fetched(response.status_code, reason=f"registry answered {response.status_code}")


def _str(doc: Any, key: str) -> str | None:
    value = doc.get(key) if isinstance(doc, dict) else None
    return str(value) if value else None
