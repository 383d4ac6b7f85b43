"""`noa drop` as a user runs it: a subprocess, against the session's real Prefect server.

Hostile inputs are built here and handed to the CLI; each must be refused with one line
on stderr and exit code 2, leave nothing outside NOA_HOME, and keep what NOA_HOME
already held.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from intake_helpers import git, make_repo, snapshot
from result_schema_helpers import assert_matches_schema

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "hello-service"


def run_noa(args: list[str], home: Path, api_url: str, cwd: Path,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api_url, NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "noa_core.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, *, type: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = type, linkname, 0o644
    return info


def zip_slip(tmp: Path) -> str:
    path = tmp / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/ok.py", "x = 1\n")
        zf.writestr("../../escaped.txt", "pwned")
    return str(path)


def tar_dotdot(tmp: Path) -> str:
    return str(_tar(tmp / "dotdot.tar.gz", [(_member("pkg/a.py"), b"a=1\n"), (_member("pkg/../../escaped.txt"), b"x")]))


def tar_absolute_link(tmp: Path) -> str:
    return str(_tar(tmp / "abslink.tar.gz", [(_member("pkg/a.py"), b"a=1\n"),
                                             (_member("pkg/passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd"), None)]))


def symlink_escape_dir(tmp: Path) -> str:
    src = tmp / "linky"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("a = 1\n")
    (src / "pkg" / "secrets").symlink_to("/etc")
    return str(src)


def zip_bomb(tmp: Path) -> str:
    path = tmp / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("pkg/zeros.bin", b"\0" * (64 * 1024 * 1024))
    return str(path)


def hooked_repo(tmp: Path) -> str:
    repo = tmp / "hooked"
    make_repo(repo, {"app.py": "print('hi')\n", ".gitattributes": "*.py filter=evil\n"})
    marker = tmp / "escaped.txt"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    with open(repo / ".git" / "config", "a") as fh:
        fh.write(f"[core]\n\tfsmonitor = touch {marker}\n[filter \"evil\"]\n\tsmudge = touch {marker}\n\tclean = cat\n")
    return str(repo)


def ext_submodule_repo(tmp: Path) -> str:
    repo = tmp / "extsub"
    make_repo(repo, {"app.py": "x = 1\n"})
    (repo / ".gitmodules").write_text(f'[submodule "evil"]\n\tpath = evil\n\turl = ext::sh -c touch% {tmp}/escaped.txt\n')
    git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},evil", cwd=repo)
    git("add", ".gitmodules", cwd=repo)
    git("commit", "-q", "-m", "add submodule", cwd=repo)
    return str(repo)


def huge_file_dir(tmp: Path) -> str:
    src = tmp / "huge"
    src.mkdir()
    (src / "big.bin").write_bytes(b"\1" * (2 * 1024 * 1024))
    return str(src)


def bad_manifest_dir(tmp: Path) -> str:
    src = tmp / "badyaml"
    src.mkdir()
    (src / "app.py").write_text("x = 1\n")
    (src / "noa.yaml").write_text("name: ok\ntest:\n  command: pytest -q\n")
    return str(src)


HOSTILE = {
    "zip slip": (zip_slip, "escaped.txt"),
    "tar with ../": (tar_dotdot, "escaped.txt"),
    "tar with absolute symlink": (tar_absolute_link, "passwd"),
    "symlink escape": (symlink_escape_dir, "secrets"),
    "zip bomb": (zip_bomb, "zeros.bin"),
    "repo with hooks, fsmonitor and filter driver": (hooked_repo, "core.fsmonitor"),
    "ext:: submodule": (ext_submodule_repo, "evil"),
    "huge file": (huge_file_dir, "big.bin"),
    "bad noa.yaml": (bad_manifest_dir, "test.command"),
}


@pytest.fixture(scope="module")
def workspace_with_one_drop(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NOA_HOME that already holds one good drop (the example service)."""
    home = tmp_path_factory.mktemp("noa-home")
    proc = run_noa(["drop", str(EXAMPLE), "--json", "--no-ai"], home, prefect_api_url, home.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return home


def test_good_drop_prints_one_json_report(workspace_with_one_drop: Path) -> None:
    reports = sorted((workspace_with_one_drop / "reports").glob("*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    for key in ("source", "project", "languages", "build_system", "dependencies", "tests", "licence", "findings",
                "confidence", "sandbox", "sandbox_reason", "analyzers", "commit"):
        assert key in report, key
    assert report["project"] == "hello-service"
    assert report["tests"]["passed"] == 9 and report["tests"]["failed"] == 0
    assert report["licence"] == "MIT"
    assert report["manifest_origin"] == "source"
    assert report["analyzers"]["llm"]["status"] == "skipped"
    assert report["sandbox"] in ("A", "B", "C")
    assert_matches_schema(report, "DropReport")  # the published schema of what --json prints


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_refused_with_exit_2(case: str, workspace_with_one_drop: Path, prefect_api_url: str,
                                              tmp_path: Path) -> None:
    build, culprit = HOSTILE[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    source = build(outside)
    home = workspace_with_one_drop
    reports_before = sorted(p.name for p in (home / "reports").iterdir())
    drops_before = sorted(p.name for p in (home / "drops").iterdir())
    outside_before = snapshot(outside)
    limits = {"NOA_INGEST__MAX_FILE_BYTES": str(1024 * 1024)} if case == "huge file" else {}
    proc = run_noa(["drop", source, "--json", "--no-ai"], home, prefect_api_url, outside, limits)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ""
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("noa: error:")]
    assert len(error_lines) == 1, proc.stderr[-3000:]
    assert culprit in error_lines[0]
    assert not (outside / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert snapshot(outside) == outside_before
    assert sorted(p.name for p in (home / "reports").iterdir()) == reports_before
    assert sorted(p.name for p in (home / "drops").iterdir()) == drops_before


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("noa: error:")]


def test_bad_sandbox_option_is_exit_2(prefect_api_url: str, tmp_path: Path) -> None:
    proc = run_noa(["drop", str(EXAMPLE), "--sandbox", "Z"], tmp_path / "home", prefect_api_url, tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == ["noa: error: --sandbox must be A, B, C or auto, not 'Z'"]


def test_unknown_source_is_exit_2(prefect_api_url: str, tmp_path: Path) -> None:
    proc = run_noa(["drop", str(tmp_path / "does-not-exist")], tmp_path / "home", prefect_api_url, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = error_lines(proc.stderr)
    assert "does-not-exist" in line
