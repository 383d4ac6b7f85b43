"""Finding and downloading a source distribution (sdist) from PyPI.

The index is read with PyPI's simple JSON API (PEP 691: ``GET /simple/NAME/`` with
``Accept: application/vnd.pypi.simple.v1+json``).  The sdist (``.tar.gz`` or ``.zip``)
of the requested version is streamed with httpx under a byte limit
(``max_total_bytes``) and a deadline (``fetch_timeout_s``), and its sha256 is checked
against the index.  With a ``cache_dir``:

* ``cache_dir/sdists/<sha256>/<filename>`` holds verified downloads (re-hashed on use);
* ``cache_dir/pypi-index/<name>==<version>.json`` remembers which file a pinned
  ``NAME==VERSION`` resolved to, so a second fetch of it needs no network at all.

Unknown package or version -> :class:`BadInput`; connection errors, timeouts, HTTP 5xx
and 429 -> :class:`NetworkError` (retry); a digest mismatch -> :class:`HostileInput`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake.errors import NetworkError
from noa_core.intake.guards import quote

#: The simple index (PEP 503/691).  Read at call time, so tests may point it elsewhere.
PYPI_SIMPLE_URL = "https://pypi.org/simple/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
MAX_INDEX_BYTES = 64 * 1024 * 1024
USER_AGENT = "noa-ark-os intake (+httpx)"

_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SdistChoice:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None
    yanked: bool


@dataclass(frozen=True)
class Download:
    path: Path
    choice: SdistChoice
    cache_hit: bool


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def valid_version(version: str) -> bool:
    return bool(_VERSION.match(version))


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _client(limits: IngestLimits) -> httpx.Client:
    timeout = httpx.Timeout(min(limits.fetch_timeout_s, 60.0), connect=min(limits.fetch_timeout_s, 30.0))
    return httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})


def _http_failure(what: str, exc: Exception) -> NetworkError:
    detail = " ".join(str(exc).split()) or exc.__class__.__name__
    return NetworkError(f"{what} failed: {detail}")


def _check_status(resp: httpx.Response, what: str, missing: str) -> None:
    code = resp.status_code
    if code in (404, 410):
        raise BadInput(missing)
    if code == 429 or code >= 500:
        raise NetworkError(f"{what} failed: HTTP {code}")
    if code >= 400:
        raise BadInput(f"{what} failed: HTTP {code}")


def resolve_sdist(name: str, version: str | None, limits: IngestLimits,
                  index_url: str | None = None) -> SdistChoice:
    """Pick the sdist of ``name==version`` (latest final release with an sdist if None)."""
    if not valid_name(name):
        raise BadInput(f"refused PyPI name {quote(name)}: not a valid project name")
    if version is not None and not valid_version(version):
        raise BadInput(f"refused PyPI version {quote(version)}: not a valid version")
    base = index_url or PYPI_SIMPLE_URL
    canon = canonicalize_name(name)
    url = urljoin(base if base.endswith("/") else base + "/", f"{canon}/")
    what = f"PyPI index lookup of {quote(name)}"
    try:
        with _client(limits) as client, client.stream("GET", url, headers={"Accept": SIMPLE_JSON}) as resp:
            _check_status(resp, what, f"no such package on PyPI: {quote(name)}")
            body = _read_capped(resp, MAX_INDEX_BYTES, time.monotonic() + limits.fetch_timeout_s, what)
    except httpx.HTTPError as exc:
        raise _http_failure(what, exc) from None
    try:
        data = json.loads(body)
        files = data["files"]
        versions = [str(v) for v in data.get("versions", [])]
    except (ValueError, KeyError, TypeError):
        raise NetworkError(f"{what} failed: the index did not answer with simple JSON") from None

    sdists: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("filename"), str):
            continue
        try:
            fname, fver = parse_sdist_filename(f["filename"])
        except (InvalidSdistFilename, InvalidVersion):
            continue
        if fname != canon:
            continue
        sdists.setdefault(str(fver), []).append(f)

    if version is None:
        candidates = []
        for v, fl in sdists.items():
            if all(_yanked(f) for f in fl):
                continue
            try:
                candidates.append((Version(v), v))
            except InvalidVersion:
                continue
        finals = [c for c in candidates if not c[0].is_prerelease and not c[0].is_devrelease]
        pool = finals or candidates
        if not pool:
            raise BadInput(f"no source distribution (sdist) of {quote(name)} on PyPI")
        version = max(pool)[1]
        chosen = [f for f in sdists[version] if not _yanked(f)]
    else:
        chosen = [f for v, fl in sdists.items() if _same_version(v, version) for f in fl]
        if not chosen:
            known = any(_same_version(v, version) for v in versions)
            if known:
                raise BadInput(f"no source distribution (sdist) of {quote(name)}=={version} on PyPI")
            raise BadInput(f"PyPI has no release {quote(version)} of {quote(name)}")
    # Prefer .tar.gz over .zip, non-yanked over yanked.
    chosen.sort(key=lambda f: (_yanked(f), not f["filename"].lower().endswith(".tar.gz"), f["filename"]))
    f = chosen[0]
    sha = str((f.get("hashes") or {}).get("sha256", "")).lower()
    if not _SHA256.match(sha):
        raise BadInput(f"PyPI gave no sha256 for {quote(f['filename'])}; refusing an unverifiable download")
    file_url = urljoin(url, str(f.get("url", "")))
    allowed = {"https", urlsplit(base).scheme}
    if urlsplit(file_url).scheme not in allowed:
        raise BadInput(f"refused sdist URL {quote(file_url)}: only https is accepted")
    size = f.get("size") if isinstance(f.get("size"), int) else None
    return SdistChoice(name=name, version=version, filename=f["filename"], url=file_url, sha256=sha,
                       size=size, yanked=_yanked(f))


def _yanked(f: dict[str, Any]) -> bool:
    return bool(f.get("yanked"))


def _read_capped(resp: httpx.Response, cap: int, deadline: float, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_bytes():
        total += len(chunk)
        if total > cap:
            raise LimitExceeded(f"{what}: answer is larger than {cap} bytes")
        if time.monotonic() > deadline:
            raise NetworkError(f"{what} failed: took longer than fetch_timeout_s")
        chunks.append(chunk)
    return b"".join(chunks)


def _safe_filename(filename: str) -> str:
    if "/" in filename or "\\" in filename or filename in ("", ".", "..") or "\x00" in filename:
        raise HostileInput(f"refused sdist file name {quote(filename)}: not a plain file name")
    return filename


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def _index_cache_path(cache_dir: Path, name: str, version: str) -> Path:
    return cache_dir / "pypi-index" / f"{canonicalize_name(name)}=={version}.json"


def _cached_choice(cache_dir: Path, name: str, version: str) -> SdistChoice | None:
    path = _index_cache_path(cache_dir, name, version)
    try:
        data = json.loads(path.read_text("utf-8"))
        choice = SdistChoice(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not _SHA256.match(choice.sha256):
        return None
    return choice


def _store_choice(cache_dir: Path, choice: SdistChoice) -> None:
    path = _index_cache_path(cache_dir, choice.name, choice.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(choice.__dict__, f)
    os.replace(tmp, path)


def download_sdist(name: str, version: str | None, limits: IngestLimits, work: Path,
                   cache_dir: Path | None) -> Download:
    """Resolve and download the sdist; the file lands in ``cache_dir`` or ``work``."""
    choice = None
    if cache_dir is not None and version is not None:
        choice = _cached_choice(cache_dir, name, version)
    if choice is not None:
        cached = cache_dir / "sdists" / choice.sha256 / _safe_filename(choice.filename)  # type: ignore[operator]
        if cached.is_file() and _sha256_file(cached) == choice.sha256:
            return Download(path=cached, choice=choice, cache_hit=True)
    if choice is None:
        choice = resolve_sdist(name, version, limits)
    filename = _safe_filename(choice.filename)
    if cache_dir is not None:
        target_dir = cache_dir / "sdists" / choice.sha256
        cached = target_dir / filename
        if cached.is_file() and _sha256_file(cached) == choice.sha256:
            if version is not None:
                _store_choice(cache_dir, choice)
            return Download(path=cached, choice=choice, cache_hit=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        part_dir = cache_dir  # same filesystem as the final place: the rename is atomic
    else:
        target_dir = part_dir = work
    if choice.size is not None and choice.size > limits.max_total_bytes:
        raise LimitExceeded(f"refused sdist {quote(filename)}: {choice.size} bytes, over max_total_bytes "
                            f"{limits.max_total_bytes}")
    fd, tmp_name = tempfile.mkstemp(dir=part_dir, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        total = 0
        deadline = time.monotonic() + limits.fetch_timeout_s
        what = f"download of {quote(choice.url)}"
        with os.fdopen(fd, "wb") as out:
            try:
                with _client(limits) as client, client.stream("GET", choice.url) as resp:
                    _check_status(resp, what, f"{what} failed: HTTP {resp.status_code}")
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                        if total > limits.max_total_bytes:
                            raise LimitExceeded(f"refused sdist {quote(filename)}: download is over "
                                                f"max_total_bytes {limits.max_total_bytes}")
                        if time.monotonic() > deadline:
                            raise NetworkError(f"{what} failed: took longer than fetch_timeout_s "
                                               f"{limits.fetch_timeout_s:g}")
                        h.update(chunk)
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise _http_failure(what, exc) from None
        digest = h.hexdigest()
        if digest != choice.sha256:
            raise HostileInput(f"refused sdist {quote(filename)}: sha256 {digest} does not match the "
                               f"index's {choice.sha256}")
        target_dir.mkdir(parents=True, exist_ok=True)
        final = target_dir / filename
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if cache_dir is not None and version is not None:
        _store_choice(cache_dir, choice)
    return Download(path=final, choice=choice, cache_hit=False)


__all__ = ["PYPI_SIMPLE_URL", "Download", "SdistChoice", "download_sdist", "resolve_sdist",
           "valid_name", "valid_version"]
