"""A Go module's build decides between a command and a library the way `go build ./...` does.

A generator kept beside a library (`//go:build generate`, `package main`) is not built by
default, so the module is a library and its build must not ask for an executable (the
Debian `uniseg` module failed its build stage that way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.analysis.build_system import go_has_main
from noa_core.analysis.go_files import (
    GoTarget,
    built_packages,
    eval_build_expr,
    name_matches,
    read_header,
)

LINUX = GoTarget("linux", "amd64")


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_generator_behind_a_build_tag_does_not_make_a_library_a_command(tmp_path: Path) -> None:
    write(tmp_path, "go.mod", "module example.com/seg\n\ngo 1.18\n")
    write(tmp_path, "seg.go", "// Package seg splits text.\npackage seg\n")
    write(tmp_path, "gen_tables.go", "//go:build generate\n\n// This program generates tables.\npackage main\n")
    write(tmp_path, "old_gen.go", "// +build ignore\n\npackage main\n")
    assert built_packages(tmp_path, LINUX) == {".": {"seg"}}
    assert go_has_main(tmp_path) is False


def test_a_command_in_a_subfolder_is_found_and_testdata_vendor_and_nested_modules_are_not(tmp_path: Path) -> None:
    write(tmp_path, "go.mod", "module example.com/tool\n")
    write(tmp_path, "lib.go", "package tool\n")
    write(tmp_path, "testdata/fixture.go", "package main\n")
    write(tmp_path, "_examples/demo.go", "package main\n")
    write(tmp_path, "other/go.mod", "module example.com/other\n")
    write(tmp_path, "other/main.go", "package main\n")
    assert go_has_main(tmp_path) is False
    write(tmp_path, "cmd/tool/main.go", "/* a block comment\n   before the clause */\npackage main\n\nfunc main() {}\n")
    assert built_packages(tmp_path, LINUX) == {".": {"tool"}, "cmd/tool": {"main"}}
    assert go_has_main(tmp_path) is True


def test_file_name_suffixes_pick_the_platform(tmp_path: Path) -> None:
    assert name_matches("poll_linux.go", LINUX)
    assert not name_matches("poll_windows.go", LINUX)
    assert not name_matches("asm_arm64.go", LINUX)
    assert name_matches("asm_linux_amd64.go", LINUX)
    assert not name_matches("asm_linux_arm64.go", LINUX)
    assert name_matches("linux.go", LINUX)  # no underscore: no constraint
    write(tmp_path, "main_windows.go", "package main\n")
    write(tmp_path, "lib.go", "package lib\n")
    assert built_packages(tmp_path, LINUX) == {".": {"lib"}}


@pytest.mark.parametrize(("expr", "expected"), [
    ("linux", True),
    ("!windows", True),
    ("linux && amd64", True),
    ("linux && arm64", False),
    ("darwin || (unix && !plan9)", True),
    ("generate", False),
    ("ignore || windows", False),
    ("go1.18 && gc", True),
    ("!(linux || darwin)", False),
])
def test_build_expressions_are_evaluated_like_go(expr: str, expected: bool) -> None:
    assert eval_build_expr(expr, LINUX) is expected


def test_old_plus_build_lines_and_the_package_clause_are_read_from_the_header() -> None:
    header = read_header(b"// Copyright\n\n// +build linux,amd64 darwin\n// +build !purego\n\npackage fast\n")
    assert header.package == "fast" and header.build_expr is None
    assert len(header.plus_build) == 2
    assert read_header(b"package mainframe\n").package == "mainframe"
