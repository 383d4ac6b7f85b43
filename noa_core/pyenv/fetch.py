"""Downloading a resolution's wheels into the wheelhouse, outside the sandbox.

Only files named by the resolution are fetched, each checked against its sha256 (a file
that does not match is deleted and reported as hostile). Nothing is unpacked or run here:
installing happens later, inside the sandbox, from these files alone. Files already in
the wheelhouse are re-hashed and reused; downloads run a few at a time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from noa_core.errors import HostileInput, NoaError
from noa_core.pyenv.resolve import WheelFile

USER_AGENT = "noa-ark-os pyenv (+httpx)"
MAX_WHEEL_BYTES = 1024 * 1024 * 1024
_CHUNK = 1024 * 1024


class FetchError(NoaError):
    """A wheel could not be downloaded (network, HTTP status, size)."""


@dataclass(frozen=True)
class Fetched:
    paths: tuple[Path, ...]
    downloaded: int       # files fetched over the network this time
    bytes_downloaded: int
    seconds: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _safe_name(filename: str, suffixes: tuple[str, ...] = (".whl",)) -> str:
    if not filename.endswith(suffixes) or "/" in filename or "\\" in filename or filename.startswith("."):
        raise HostileInput(f"refusing package file name {filename!r}")
    return filename


def _copy_local(url: str, sha256: str, dest: Path) -> int:
    """A ``file://`` entry of a resolution: a wheel NOA built itself from an sdist."""
    src = Path(urlsplit(url).path)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    try:
        shutil.copyfile(src, tmp)
        if _sha256(tmp) != sha256:
            raise HostileInput(f"{src.name}: sha256 does not match the resolution")
        os.replace(tmp, dest)
        return dest.stat().st_size
    except OSError as exc:
        raise FetchError(f"{src.name}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _download(client: httpx.Client, wheel: WheelFile, dest: Path) -> int:
    if wheel.url.startswith("file://"):
        return _copy_local(wheel.url, wheel.sha256, dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    h = hashlib.sha256()
    size = 0
    try:
        with client.stream("GET", wheel.url) as resp:
            if resp.status_code != 200:
                raise FetchError(f"{wheel.filename}: HTTP {resp.status_code} from the index")
            with open(tmp, "wb") as out:
                for chunk in resp.iter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > MAX_WHEEL_BYTES:
                        raise FetchError(f"{wheel.filename}: larger than {MAX_WHEEL_BYTES} bytes")
                    h.update(chunk)
                    out.write(chunk)
        if h.hexdigest() != wheel.sha256:
            raise HostileInput(f"{wheel.filename}: sha256 does not match the resolution")
        os.replace(tmp, dest)
        return size
    except httpx.HTTPError as exc:
        raise FetchError(f"{wheel.filename}: {type(exc).__name__}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch_file(url: str, filename: str, sha256: str, folder: Path, *, timeout_s: float = 120.0) -> Path:
    """One package file (an sdist) into ``folder``, sha256-checked; reused when already there."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / _safe_name(filename, (".tar.gz", ".tgz", ".tar", ".zip", ".whl"))
    if dest.is_file() and _sha256(dest) == sha256:
        return dest
    wheel = WheelFile(name=filename, version="", filename=filename, url=url, sha256=sha256, size=None)
    with httpx.Client(timeout=timeout_s, follow_redirects=True, headers={"User-Agent": USER_AGENT}) as client:
        _download(client, wheel, dest)
    return dest


def fetch_wheels(wheels: Sequence[WheelFile], wheelhouse: Path, *, timeout_s: float = 120.0,
                 parallel: int = 4) -> Fetched:
    """Every wheel of ``wheels`` present and verified in ``wheelhouse``; raises FetchError/HostileInput."""
    t0 = time.perf_counter()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[WheelFile, Path]] = []
    paths: list[Path] = []
    for wheel in wheels:
        dest = wheelhouse / _safe_name(wheel.filename)
        paths.append(dest)
        if dest.is_file() and _sha256(dest) == wheel.sha256:
            os.utime(dest)  # used: kept by `noa workspace cleanup`
            continue
        dest.unlink(missing_ok=True)
        todo.append((wheel, dest))
    total = 0
    if todo:
        with httpx.Client(timeout=timeout_s, follow_redirects=True, headers={"User-Agent": USER_AGENT}) as client:
            with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(todo)))) as pool:
                for size in pool.map(lambda job: _download(client, *job), todo):
                    total += size
    return Fetched(tuple(paths), len(todo), total, time.perf_counter() - t0)
