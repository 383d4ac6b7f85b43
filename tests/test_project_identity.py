"""How a dropped project is named (noa_core.adaptation.project_identity): its noa.yaml, then its
pyproject.toml, then what the source says; read with the hostile-tree guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from noa_core.adaptation import project_identity
from noa_core.errors import ManifestError


def test_pyproject_names_the_project_when_there_is_no_noa_yaml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "Tiny Lib"\nversion = "1.2.3"\n')
    assert project_identity(tmp_path, "from-url", "9.9") == ("Tiny-Lib", "1.2.3")


def test_noa_yaml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "1.2.3"\n')
    (tmp_path / "noa.yaml").write_text("name: service\nversion: 2.0.0\n")
    assert project_identity(tmp_path, "from-url", None) == ("service", "2.0.0")


def test_broken_or_linked_pyproject_falls_back_to_the_source_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    assert project_identity(tmp_path, "from-url", "0.1") == ("from-url", "0.1")
    (tmp_path / "pyproject.toml").unlink()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.toml"
    outside.write_text('[project]\nname = "secret-name"\n')
    (tmp_path / "pyproject.toml").symlink_to(outside)
    assert project_identity(tmp_path, "from-url", None) == ("from-url", None)


def test_a_bad_noa_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "noa.yaml").write_text("name: [not, a, name]\n")
    with pytest.raises(ManifestError):
        project_identity(tmp_path, "from-url", None)
