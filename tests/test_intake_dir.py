"""Directory sources: plain copies without following links."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake import SourceSpec, parse_source

try:
    from tests.intake_helpers import fetched_ok, limits, refused, tree_files
except ImportError:  # tests/ not importable as a package
    from intake_helpers import fetched_ok, limits, refused, tree_files


def make_project(root: Path) -> Path:
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "__init__.py").write_text("X = 1\n")
    (root / "src" / "app" / "__pycache__").mkdir()
    (root / "src" / "app" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0pyc")
    (root / "scripts").mkdir()
    (root / "scripts" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "scripts" / "run.sh", 0o4775)
    (root / "README.md").write_text("hello\n")
    os.chmod(root / "README.md", 0o666)
    (root / "empty").mkdir()
    (root / ".noa").mkdir()
    (root / ".noa" / "registry.db").write_bytes(b"db")
    return root


def test_dir_is_copied(tmp_path: Path) -> None:
    src = make_project(tmp_path / "myproject")
    os.symlink("README.md", src / "README.link")  # internal relative link: copied as a file
    os.symlink("../README.md", src / "src" / "README.up")
    dest = tmp_path / "drops" / "d"
    res = fetched_ok(parse_source(str(src)), dest, limits(), tmp_path)
    assert res.spec == SourceSpec("dir", str(src))
    assert res.name_hint == "myproject"
    assert tree_files(dest) == {
        "src/app/__init__.py": b"X = 1\n",
        "scripts/run.sh": b"#!/bin/sh\n",
        "README.md": b"hello\n",
        "README.link": b"hello\n",
        "src/README.up": b"hello\n",
    }
    assert (dest / "empty").is_dir()
    assert not (dest / "README.link").is_symlink()
    assert stat.S_IMODE((dest / "scripts/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o644
    assert res.files_total == 5
    assert res.bytes_total == 6 + 10 + 6 + 6 + 6
    assert sorted(res.meta["skipped"]) == [".noa", "src/app/__pycache__"]
    assert sorted(res.meta["symlinks_copied"]) == ["README.link", "src/README.up"]
    # the source is untouched
    assert (src / "src/app/__pycache__/x.cpython-311.pyc").exists()


def test_symlink_escape_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    src = make_project(tmp_path / "proj")
    os.symlink("../../secret.txt", src / "src" / "leak.txt")
    refused(parse_source(str(src)), tmp_path / "out", limits(), HostileInput, "'src/leak.txt'", tmp_path)


def test_absolute_symlink_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    os.symlink("/etc/passwd", src / "passwd")
    err = refused(parse_source(str(src)), tmp_path / "out", limits(), HostileInput, "'passwd'", tmp_path)
    assert "absolute symlink" in str(err)


def test_symlinked_directory_escape_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("x")
    src = make_project(tmp_path / "proj")
    os.symlink("../outside", src / "linkdir")
    refused(parse_source(str(src)), tmp_path / "out", limits(), HostileInput, "'linkdir'", tmp_path)


def test_internal_directory_symlink_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    os.symlink("src", src / "alias")
    err = refused(parse_source(str(src)), tmp_path / "out", limits(), BadInput, "'alias'", tmp_path)
    assert "symlink to a directory" in str(err)


def test_dangling_symlink_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    os.symlink("nowhere.txt", src / "dangling")
    refused(parse_source(str(src)), tmp_path / "out", limits(), BadInput, "'dangling'", tmp_path)


def test_fifo_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    os.mkfifo(src / "pipe")
    err = refused(parse_source(str(src)), tmp_path / "out", limits(), HostileInput, "'pipe'", tmp_path)
    assert "special file" in str(err)


def test_nested_git_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    (src / "vendor" / "lib" / ".git").mkdir(parents=True)
    (src / "vendor" / "lib" / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/x\n")
    refused(parse_source(str(src)), tmp_path / "out", limits(), HostileInput, "'vendor/lib/.git'", tmp_path)


def test_dest_inside_source_refused(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    dest = src / "drops" / "d"
    err = refused(parse_source(str(src)), dest, limits(), BadInput, str(dest), tmp_path)
    assert "recurse" in str(err)


def test_noa_home_inside_source_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_project(tmp_path / "proj")
    monkeypatch.setenv("NOA_HOME", str(src / "var" / "noa"))
    err = refused(parse_source(str(src)), tmp_path / "out", limits(), BadInput, "NOA_HOME", tmp_path)
    assert str(src / "var" / "noa") in str(err)


def test_dest_under_skipped_noa_dir_is_fine(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    dest = src / ".noa" / "drops" / "d1"
    res = fetched_ok(parse_source(str(src)), dest, limits(), tmp_path)
    assert "README.md" in tree_files(res.tree)
    assert not (dest / ".noa").exists()


def test_too_many_files(tmp_path: Path) -> None:
    src = tmp_path / "proj"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.txt").write_text("x")
    err = refused(parse_source(str(src)), tmp_path / "out", limits(max_files=10), LimitExceeded, "'f10.txt'",
                  tmp_path)
    assert "max_files" in str(err)


def test_huge_file(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    (src / "blob.bin").write_bytes(b"\1" * 5000)
    refused(parse_source(str(src)), tmp_path / "out", limits(max_file_bytes=4096), LimitExceeded, "'blob.bin'",
            tmp_path)


def test_git_work_tree_is_not_a_dir_source(tmp_path: Path) -> None:
    src = make_project(tmp_path / "proj")
    (src / ".git").mkdir()
    assert parse_source(str(src)).kind == "git"
    refused(SourceSpec("dir", str(src)), tmp_path / "out", limits(), BadInput, str(src), tmp_path)


def test_missing_dir(tmp_path: Path) -> None:
    refused(SourceSpec("dir", str(tmp_path / "nope")), tmp_path / "out", limits(), BadInput, "nope", tmp_path)
