"""PyPI sources: index lookup, verified streaming download, cache, extraction.

Most tests use a tiny local index server (http.server) speaking PyPI's simple JSON API;
one test, marked ``network``, fetches toolz 1.2.0 from the real PyPI.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake import NetworkError, SourceSpec, fetch_source, parse_source
from noa_core.intake import pypi as pypi_mod

try:
    from tests.intake_helpers import fetched_ok, limits, refused, tree_files
except ImportError:  # tests/ not importable as a package
    from intake_helpers import fetched_ok, limits, refused, tree_files


def sdist_bytes(top: str, files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return raw.getvalue()


class FakeIndex:
    """A local simple-JSON index: ``routes`` maps a path to (status, content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                index.requests.append(self.path)
                status, ctype, body = index.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def add_project(self, name: str, releases: dict[str, list[tuple[str, bytes]]], *,
                    sha_override: str | None = None) -> None:
        files = []
        for _version, dists in releases.items():
            for filename, data in dists:
                path = f"/files/{filename}"
                self.routes[path] = (200, "application/octet-stream", data)
                files.append({"filename": filename, "url": path, "size": len(data),
                              "hashes": {"sha256": sha_override or hashlib.sha256(data).hexdigest()},
                              "yanked": False})
        doc = {"meta": {"api-version": "1.1"}, "name": name, "versions": list(releases), "files": files}
        self.routes[f"/simple/{name}/"] = (200, "application/vnd.pypi.simple.v1+json", json.dumps(doc).encode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIndex]:
    fake = FakeIndex()
    monkeypatch.setattr(pypi_mod, "PYPI_SIMPLE_URL", fake.url + "/simple/")
    yield fake
    fake.close()


TOY = sdist_bytes("toy_pkg-0.2.0", {"toy_pkg/__init__.py": b"V = 2\n", "tests/test_toy.py": b"def test(): pass\n",
                                    "PKG-INFO": b"Name: toy-pkg\n"})


def test_sdist_fetched_verified_and_cached(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {
        "0.1.0": [("toy_pkg-0.1.0.tar.gz", sdist_bytes("toy_pkg-0.1.0", {"a.py": b"old"}))],
        "0.2.0": [("toy_pkg-0.2.0-py3-none-any.whl", b"wheel"), ("toy_pkg-0.2.0.tar.gz", TOY)],
    })
    cache = tmp_path / "cache"
    res = fetched_ok(parse_source("pypi:Toy_Pkg==0.2.0"), tmp_path / "d1", limits(), tmp_path, cache_dir=cache)
    assert tree_files(res.tree) == {"toy_pkg/__init__.py": b"V = 2\n", "tests/test_toy.py": b"def test(): pass\n",
                                    "PKG-INFO": b"Name: toy-pkg\n"}
    assert res.name_hint == "Toy_Pkg"
    assert res.meta["sha256"] == hashlib.sha256(TOY).hexdigest()
    assert res.meta["filename"] == "toy_pkg-0.2.0.tar.gz"
    assert res.meta["cache_hit"] is False
    assert res.meta["stripped_prefix"] == "toy_pkg-0.2.0"
    assert (cache / "sdists" / res.meta["sha256"] / "toy_pkg-0.2.0.tar.gz").read_bytes() == TOY
    assert index.requests == ["/simple/toy-pkg/", "/files/toy_pkg-0.2.0.tar.gz"]

    # Second fetch of the pinned version: served from the cache, no request at all.
    index.requests.clear()
    again = fetched_ok(parse_source("pypi:toy-pkg==0.2.0"), tmp_path / "d2", limits(), tmp_path, cache_dir=cache)
    assert again.meta["cache_hit"] is True
    assert index.requests == []
    assert tree_files(again.tree) == tree_files(res.tree)

    # Unpinned: latest release, looked up in the index, sdist from the cache.
    latest = fetched_ok(parse_source("pypi:toy-pkg"), tmp_path / "d3", limits(), tmp_path, cache_dir=cache)
    assert latest.spec.version is None and latest.meta["version"] == "0.2.0"
    assert latest.meta["cache_hit"] is True
    assert index.requests == ["/simple/toy-pkg/"]


def test_without_cache_dir_nothing_is_kept(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {"0.2.0": [("toy_pkg-0.2.0.tar.gz", TOY)]})
    res = fetched_ok(SourceSpec("pypi", "toy-pkg", "0.2.0"), tmp_path / "d", limits(), tmp_path)
    assert res.meta["cached_path"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_unknown_package(tmp_path: Path, index: FakeIndex) -> None:
    refused(SourceSpec("pypi", "no-such-thing", "1.0"), tmp_path / "d", limits(), BadInput, "'no-such-thing'",
            tmp_path)


def test_unknown_version(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {"0.2.0": [("toy_pkg-0.2.0.tar.gz", TOY)]})
    err = refused(SourceSpec("pypi", "toy-pkg", "9.9.9"), tmp_path / "d", limits(), BadInput, "'9.9.9'", tmp_path)
    assert "no release" in str(err)


def test_wheel_only_release(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {"0.3.0": [("toy_pkg-0.3.0-py3-none-any.whl", b"w")]})
    err = refused(SourceSpec("pypi", "toy-pkg", "0.3.0"), tmp_path / "d", limits(), BadInput, "'toy-pkg'", tmp_path)
    assert "no source distribution" in str(err)


def test_sha256_mismatch(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {"0.2.0": [("toy_pkg-0.2.0.tar.gz", TOY)]}, sha_override="0" * 64)
    cache = tmp_path / "cache"
    cache.mkdir()
    err = refused(SourceSpec("pypi", "toy-pkg", "0.2.0"), tmp_path / "d", limits(), HostileInput,
                  "toy_pkg-0.2.0.tar.gz", tmp_path, cache_dir=cache)
    assert "does not match" in str(err)
    assert list(cache.iterdir()) == []  # nothing unverified is cached


def test_download_over_limit(tmp_path: Path, index: FakeIndex) -> None:
    index.add_project("toy-pkg", {"0.2.0": [("toy_pkg-0.2.0.tar.gz", TOY)]})
    refused(SourceSpec("pypi", "toy-pkg", "0.2.0"), tmp_path / "d", limits(max_total_bytes=100), LimitExceeded,
            "toy_pkg-0.2.0.tar.gz", tmp_path)


def test_server_error_is_network_error(tmp_path: Path, index: FakeIndex) -> None:
    index.routes["/simple/toy-pkg/"] = (503, "text/plain", b"busy")
    refused(SourceSpec("pypi", "toy-pkg", "0.2.0"), tmp_path / "d", limits(), NetworkError, "'toy-pkg'", tmp_path)


def test_connection_refused_is_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIndex()
    url = fake.url
    fake.close()  # nothing listens there any more
    monkeypatch.setattr(pypi_mod, "PYPI_SIMPLE_URL", url + "/simple/")
    refused(SourceSpec("pypi", "toy-pkg", "0.2.0"), tmp_path / "d", limits(fetch_timeout_s=5), NetworkError,
            "'toy-pkg'", tmp_path)


def test_hostile_sdist_is_refused(tmp_path: Path, index: FakeIndex) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tf:
        info = tarfile.TarInfo("evil-1.0/../../pypi_pwned.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    index.add_project("evil", {"1.0": [("evil-1.0.tar.gz", raw.getvalue())]})
    refused(SourceSpec("pypi", "evil", "1.0"), tmp_path / "d", limits(), HostileInput, "pypi_pwned.txt", tmp_path)
    assert not (tmp_path / "pypi_pwned.txt").exists()


@pytest.mark.network
def test_real_pypi_toolz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    spec = parse_source("pypi:toolz==1.2.0")
    try:
        res = fetch_source(spec, tmp_path / "d1", limits(fetch_timeout_s=120), cache_dir=cache)
    except NetworkError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PyPI not reachable: {exc}")
    assert (res.tree / "toolz" / "__init__.py").is_file()
    assert any(p.name.startswith("test_") for p in (res.tree / "toolz" / "tests").iterdir())
    assert res.meta["filename"] == "toolz-1.2.0.tar.gz"
    assert res.meta["sha256"] == "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490"
    assert res.meta["cache_hit"] is False
    assert res.name_hint == "toolz"
    assert res.files_total > 30

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the second fetch must come from the cache")

    monkeypatch.setattr(httpx, "Client", no_network)
    again = fetch_source(spec, tmp_path / "d2", limits(), cache_dir=cache)
    assert again.meta["cache_hit"] is True
    assert again.files_total == res.files_total and again.bytes_total == res.bytes_total
