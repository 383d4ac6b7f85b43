"""On 20+ real sdists with duplicates (downloaded once into ~/.cache/noa-bench/sdists):
scan, the SOT archive, an unchanged rescan, and the cross-project dependency graph."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from backup_helpers import WORKSPACE_SDISTS, sdist_files

from noa_core.cltree import verify
from noa_core.config import NoaSettings
from noa_core.workspace.archive import read_archived
from noa_core.workspace.deps import build_graph
from noa_core.workspace.scan import scan


@pytest.mark.slow
def test_real_sdists_scan_archive_rescan_and_graph(tmp_path: Path) -> None:
    sdists = sorted(sdist_files(WORKSPACE_SDISTS))  # downloaded once into the shared cache
    assert len(sdists) >= 20
    tree = tmp_path / "tree"
    for i, sdist in enumerate(sdists):
        with tarfile.open(sdist) as tar:
            tar.extractall(tree, filter="data")
    for top in sorted(tree.iterdir())[:3]:  # three projects copied a second time
        shutil.copytree(top, tree / "dup" / top.name, symlinks=True)
    settings = NoaSettings(home=tmp_path / "home")

    first = scan(settings, tree)
    assert first.files > 1000 and first.added == first.files
    assert first.duplicate_files > 50 and first.saved_bytes > 0 and first.archive_bytes < first.duplicate_bytes
    some = sorted(settings.layout().archive.iterdir())[0]
    assert len(read_archived(settings.layout().archive, some.name)) >= 0  # decompresses and matches its hash

    again = scan(settings, tree)
    assert again.hashed_files == again.racy and again.unchanged + again.racy == first.files
    assert verify(settings).ok

    graph = build_graph(tree)
    projects = {graph.nodes[n]["name"].lower() for n in graph.nodes if graph.nodes[n]["kind"] == "project"}
    assert len(projects) >= 20
    internal = [(a, b) for a, b in graph.edges if b.startswith("project:")]
    assert internal, "sdists that depend on each other (requests -> urllib3, idna, certifi) give workspace edges"
