"""The Docker target's engine-free parts: build context, requirements, generated Dockerfile,
base-image recipe hash, apt mirror discovery, and scripts/dockerd.sh's usage line."""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from noa_core.deploy.docker_context import (
    DependencyError,
    context_tar,
    is_secret_name,
    requirements_of,
)
from noa_core.deploy.docker_images import RUNTIME, apt_mirror
from noa_core.deploy.dockerfiles import noa_dockerfile
from noa_core.deploy.interface import DeployError, Release

ROOT = Path(__file__).resolve().parents[1]


def _release(tree: Path, **over: object) -> Release:
    fields: dict[str, object] = {"app": "svc", "release_id": "svc-1-abc", "version": "1", "source": str(tree),
                                 "content_hash": "ab" * 32, "command": ("python", "app.py")}
    fields.update(over)
    return Release(**fields)  # type: ignore[arg-type]


def test_build_context_leaves_out_vcs_caches_and_secret_files(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    for rel in ("app.py", "src/pkg/mod.py", ".env", ".env.production", "deploy/server.key", "certs/tls.pem",
                ".git/config", "node_modules/x/index.js", "__pycache__/a.pyc", ".ssh/id_rsa", "keys/id_ed25519",
                ".env.example", "conf/.pypirc"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    (tree / "escape").symlink_to("/etc/passwd")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    buf, left_out = context_tar(tree, {"Dockerfile.noa": "FROM x\n"}, {".noa-wheels/demo-1.0-py3-none-any.whl": wheel})
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = sorted(tar.getnames())
    assert names == [".env.example", ".noa-wheels/demo-1.0-py3-none-any.whl", "Dockerfile.noa", "app.py",
                     "src/pkg/mod.py"]
    assert sorted(left_out) == [".env", ".env.production", "certs/tls.pem", "conf/.pypirc", "deploy/server.key",
                                "keys/id_ed25519"]
    assert is_secret_name("ID_RSA.pub") and not is_secret_name("environment.py")


def test_requirements_come_from_requirements_txt_else_pyproject(tmp_path: Path) -> None:
    assert requirements_of(tmp_path) == []
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["six>=1.16", "attrs"]\n')
    assert requirements_of(tmp_path) == ["six>=1.16", "attrs"]
    (tmp_path / "requirements.txt").write_text("# pinned\nsix==1.16.0  # compat\n\nattrs==23.1.0\n")
    assert requirements_of(tmp_path) == ["six==1.16.0", "attrs==23.1.0"]
    (tmp_path / "requirements.txt").write_text("--index-url http://evil.example/simple\nsix\n")
    with pytest.raises(DependencyError, match="option lines are not supported"):
        requirements_of(tmp_path)


def test_noa_dockerfile_is_offline_and_unprivileged(tmp_path: Path) -> None:
    text = noa_dockerfile(_release(tmp_path), RUNTIME.tag, with_wheels=True)
    lines = text.splitlines()
    assert lines[0] == f"FROM {RUNTIME.tag}" and lines[-1] == 'CMD ["python", "app.py"]'
    assert "--no-index" in text and "--find-links /app/.noa-wheels" in text and "USER 10001:10001" in text
    assert "--no-index" not in noa_dockerfile(_release(tmp_path), RUNTIME.tag, with_wheels=False)
    with pytest.raises(DeployError, match="no run.command"):
        noa_dockerfile(_release(tmp_path, command=()), RUNTIME.tag, with_wheels=False)


def test_base_image_tag_is_a_hash_of_its_inputs_only() -> None:
    same = replace(RUNTIME, packages=tuple(reversed(RUNTIME.packages)))
    assert same.tag == RUNTIME.tag  # order does not matter
    assert replace(RUNTIME, packages=(*RUNTIME.packages, "curl")).tag != RUNTIME.tag
    assert replace(RUNTIME, suite="trixie").tag != RUNTIME.tag
    assert replace(RUNTIME, recipe_version=RUNTIME.recipe_version + 1).tag != RUNTIME.tag
    assert RUNTIME.tag.startswith("noa/base-runtime:") and len(RUNTIME.tag.split(":")[1]) == 16
    assert RUNTIME.tarball(Path("/c")).name == f"base-runtime-{RUNTIME.content_hash()[:16]}.tar"


def test_apt_mirror_reads_one_line_and_deb822_sources(tmp_path: Path) -> None:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    assert apt_mirror(etc) == "http://deb.debian.org/debian"
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n")
    assert apt_mirror(etc) == "http://mirror.example/debian"
    (etc / "sources.list").write_text("# comment\ndeb [signed-by=/k.gpg] http://one.example/debian bookworm main\n")
    assert apt_mirror(etc) == "http://one.example/debian"


def test_dockerd_script_refuses_an_unknown_command_with_exit_2() -> None:
    p = subprocess.run(["bash", str(ROOT / "scripts" / "dockerd.sh"), "restart-everything"], check=False,
                       capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.strip() == "dockerd.sh: error: usage: scripts/dockerd.sh start|stop|status"
