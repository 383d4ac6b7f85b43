"""Helpers for the backup tests: a tree of real sdists with duplicates, servers, comparisons.

The sdists come from ``~/.cache/noa-bench/sdists`` (filled by bench/bench_backup.py) or
are downloaded once with ``pip download --no-deps --no-binary :all:``; without a
package index the tests that need them say "skipped" with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SDIST_CACHE = Path(os.environ.get("NOA_BENCH_CACHE", Path.home() / ".cache" / "noa-bench")) / "sdists"
TEST_SDISTS = ("cachetools==8.0.2", "toolz==1.2.0", "click==8.5.1")
AZURITE = REPO_ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_CONN = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                "BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


#: small, pure-Python sdists from the backup bench's list (Django, sympy, pip and setuptools left out)
WORKSPACE_SDISTS = (
    "cachetools==8.0.2", "toolz==1.2.0", "toolz==1.0.0", "click==8.5.1", "click==8.1.8", "more-itertools==11.2.1",
    "attrs==25.3.0", "attrs==24.2.0", "requests==2.32.3", "requests==2.32.4", "idna==3.10", "six==1.17.0",
    "packaging==24.2", "packaging==25.0", "pyparsing==3.2.3", "Jinja2==3.1.6", "MarkupSafe==3.0.2",
    "certifi==2025.4.26", "urllib3==2.4.0", "charset-normalizer==3.4.2", "tomli==2.2.1", "typing_extensions==4.13.2",
    "pluggy==1.6.0", "iniconfig==2.1.0", "colorama==0.4.6", "python-dateutil==2.9.0.post0",
)


def _download(name: str, version: str) -> Path:
    """One sdist from PyPI's simple index with NOA's own downloader (no build step, sha256 checked)."""
    import tempfile

    from noa_core.config import IngestLimits
    from noa_core.errors import NoaError
    from noa_core.intake.pypi import download_sdist

    with tempfile.TemporaryDirectory(dir=SDIST_CACHE) as work:
        try:
            got = download_sdist(name, version, IngestLimits(), Path(work), None)
        except NoaError as exc:
            pytest.skip(f"skipped: cannot download sdist {name}=={version}: {exc}")
        target = SDIST_CACHE / got.path.name
        os.replace(got.path, target)
    return target


def sdist_files(specs: tuple[str, ...] = TEST_SDISTS) -> list[Path]:
    """The sdist archives for ``specs``, downloaded into the shared cache if absent."""
    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    found = []
    for spec in specs:
        name, version = spec.split("==")
        stem = f"{name.replace('-', '_').lower()}-{version}"
        hits = [p for p in SDIST_CACHE.iterdir() if p.name.lower().replace("-", "_").startswith(stem.replace("-", "_"))
                and p.name.endswith((".tar.gz", ".zip"))]
        if not hits:
            hits = [_download(name, version)]
        found.append(sorted(hits)[0])
    return found


def build_tree(root: Path, specs: tuple[str, ...] = TEST_SDISTS) -> Path:
    """Real sdists extracted, one of them twice (duplicates), plus odd modes, a symlink, a big file."""
    root.mkdir(parents=True)
    for archive in sdist_files(specs):
        with tarfile.open(archive) as tf:
            tf.extractall(root, filter="data")
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    shutil.copytree(first, root / "duplicate" / first.name, symlinks=True)  # same content, other place
    extra = root / "extra"
    extra.mkdir()
    (extra / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (extra / "run.sh").chmod(0o750)
    (extra / "secret.txt").write_text("only me\n")
    (extra / "secret.txt").chmod(0o600)
    (extra / "empty").write_bytes(b"")
    (extra / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 12345))  # three chunks
    (extra / "link").symlink_to("run.sh")
    os.utime(extra / "secret.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (extra / "ro").mkdir()
    (extra / "ro" / "file").write_text("read only dir\n")
    for p in extra.rglob("*"):  # sdist files are old; so are these (racy-clean for the parent scan)
        os.utime(p, ns=(1_650_000_000_000_000_000, 1_650_000_000_000_000_000), follow_symlinks=False)
    os.utime(extra / "secret.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (extra / "ro").chmod(0o555)
    return root


def tree_state(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, mtime_ns, size or link target) for everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size)
    return out


def assert_same_tree(a: Path, b: Path) -> None:
    proc = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-500:]
    sa, sb = tree_state(a), tree_state(b)
    diffs = {k: (sa.get(k), sb.get(k)) for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)}
    assert not diffs, list(diffs.items())[:10]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.2)
    return f"not listening after {timeout:.0f} s"


def server(cmd: list[str], port: int, log: Path, what: str) -> Iterator[int]:
    if not Path(cmd[0]).exists():
        pytest.skip(f"skipped: {what} is not installed ({cmd[0]})")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        problem = wait_port(port, proc)
        if problem:
            pytest.skip(f"skipped: {what} did not start ({problem}): {log.read_text()[-300:]}")
        yield port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
