"""parse_source: recognising SOURCE arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from noa_core.errors import BadInput
from noa_core.intake import SourceSpec, parse_source

try:
    from tests.intake_helpers import make_repo
except ImportError:  # tests/ not importable as a package
    from intake_helpers import make_repo


@pytest.mark.parametrize("text,expected", [
    ("pypi:toolz==1.2.0", SourceSpec("pypi", "toolz", "1.2.0")),
    ("  pypi:more-itertools==11.2.1 ", SourceSpec("pypi", "more-itertools", "11.2.1")),
    ("PYPI:Zope.Interface==6.0", SourceSpec("pypi", "Zope.Interface", "6.0")),
    ("pypi:toolz", SourceSpec("pypi", "toolz", None)),
    ("https://github.com/pytoolz/toolz.git", SourceSpec("git", "https://github.com/pytoolz/toolz.git")),
    ("git+https://example.com/org/repo", SourceSpec("git", "https://example.com/org/repo")),
])
def test_recognised(text: str, expected: SourceSpec) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize("text,words", [
    ("", "empty source"),
    ("pypi:", "not a valid PyPI project name"),
    ("pypi:toolz>=1.0", "only exact versions"),
    ("pypi:toolz==", "version missing"),
    ("pypi:-bad-==1", "not a valid PyPI project name"),
    ("pypi:toolz==1.0 ; rm -rf /", "not a valid version"),
    ("http://example.com/repo.git", "unsupported URL scheme 'http'"),
    ("ssh://git@example.com/repo.git", "unsupported URL scheme 'ssh'"),
    ("git://example.com/repo.git", "unsupported URL scheme 'git'"),
    ("git@github.com:org/repo.git", "ssh and transport-helper"),
    ("ext::sh -c touch% /tmp/pwned", "ssh and transport-helper"),
    ("https://user:token@example.com/repo.git", "credentials in URLs"),
    ("https://example.com/release-1.0.tar.gz", "remote archives"),
    ("https://example.com/", "names no repository"),
    ("/definitely/not/here", "no such file or directory"),
    ("file:///definitely/not/here", "no such git repository"),
    ("line\nbreak", "control character"),
])
def test_refused(text: str, words: str) -> None:
    with pytest.raises(BadInput) as excinfo:
        parse_source(text)
    message = str(excinfo.value)
    assert "\n" not in message
    assert words in message


def test_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    repo = tmp_path / "repo"
    make_repo(repo, {"a": "a"})
    (tmp_path / "x.tar.gz").write_bytes(b"")
    (tmp_path / "x.ZIP").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert parse_source("plain") == SourceSpec("dir", str(plain))
    assert parse_source("./repo") == SourceSpec("git", str(repo))
    assert parse_source(str(repo / ".git")) == SourceSpec("git", str(repo / ".git"))
    assert parse_source("x.tar.gz") == SourceSpec("archive", str(tmp_path / "x.tar.gz"))
    assert parse_source("x.ZIP").kind == "archive"
    with pytest.raises(BadInput, match="unsupported file type"):
        parse_source("notes.txt")
    os.symlink("plain", tmp_path / "alias")
    assert parse_source("alias") == SourceSpec("dir", str(plain))
    assert parse_source(f"file://{repo}") == SourceSpec("git", f"file://{repo}")
