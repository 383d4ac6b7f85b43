"""Pruning old swarm image tags, against the real Docker engine.

The images here are tiny ones made for the test (``docker import`` of a one-file tarball, and
``docker build`` FROM it with one more file) in repositories of their own, so the test never
touches the real ``noa/swarm`` tags other runs on the same engine use.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from docker_helpers import docker_engine


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Images:
    """Tiny deps images (imported) and swarm images built FROM them, in test-only repositories."""

    def __init__(self, client: Any) -> None:
        self.client = client
        prefix = f"noa-test-{uuid.uuid4().hex[:10]}"
        self.swarm_repo, self.deps_repo = f"{prefix}/swarm", f"{prefix}/swarm-deps"
        self.containers: list[Any] = []

    def deps(self, name: str) -> str:
        tag = f"{self.deps_repo}:{name}"
        repo, t = tag.split(":")
        self.client.api.import_image_from_data(_tar({"deps.txt": name}), repository=repo, tag=t)
        return tag

    def swarm(self, name: str, deps: str) -> str:
        tag = f"{self.swarm_repo}:{name}"
        context = _tar({"Dockerfile": f"FROM {deps}\nCOPY src.txt /src.txt\n", "src.txt": name})
        self.client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True,
                                 network_mode="none")
        return tag

    def tags(self) -> set[str]:
        return {t for repo in (self.swarm_repo, self.deps_repo) for i in self.client.images.list(name=repo)
                for t in i.tags}

    def close(self) -> None:
        for c in self.containers:
            c.remove(force=True)
        for tag in sorted(self.tags()):  # swarm tags sort before swarm-deps tags
            self.client.images.remove(tag, force=True)


@pytest.fixture
def images() -> Iterator[Images]:
    made = Images(docker_engine())
    try:
        yield made
    finally:
        made.close()


def test_prune_keeps_current_bases_and_used_and_removes_the_rest(images: Images) -> None:
    from noa_core.swarm.image_prune import prune_swarm_images

    deps_old, deps_used, deps_cur = images.deps("old"), images.deps("used"), images.deps("cur")
    swarm_old = images.swarm("old", deps_old)
    swarm_used = images.swarm("used", deps_used)
    swarm_cur = images.swarm("cur", deps_cur)
    images.containers.append(images.client.containers.create(swarm_used, command=["true"],
                                                             labels={"noa-test": "prune"}))
    before = images.tags()
    assert before == {deps_old, deps_used, deps_cur, swarm_old, swarm_used, swarm_cur}

    def run(**kw: Any) -> dict[str, tuple[str, str]]:
        done = prune_swarm_images(keep=(swarm_cur, deps_cur), repositories=(images.swarm_repo, images.deps_repo),
                                  client=images.client, **kw)
        return {p.tag: (p.action, p.reason) for p in done}

    # just built: a grace period keeps everything
    young = run(min_age_s=3600)
    assert {a for a, _ in young.values()} == {"kept"} and images.tags() == before

    planned = run(dry_run=True)
    assert images.tags() == before
    assert planned[swarm_old][0] == planned[deps_old][0] == "would remove"

    done = run()
    assert done[swarm_cur] == ("kept", "current") and done[deps_cur] == ("kept", "current")
    assert done[swarm_used] == ("kept", "used by a container")
    assert done[deps_used] == ("kept", f"base of {swarm_used}")
    assert done[swarm_old][0] == done[deps_old][0] == "removed"
    assert images.tags() == {deps_used, deps_cur, swarm_used, swarm_cur}


def test_cli_prune_dry_run_lists_and_removes_nothing() -> None:
    client = docker_engine()
    before = {t for repo in ("noa/swarm", "noa/swarm-deps") for i in client.images.list(name=repo) for t in i.tags}
    proc = subprocess.run([sys.executable, "-m", "noa_core.cli", "docker", "images", "prune", "--dry-run", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    after = {t for repo in ("noa/swarm", "noa/swarm-deps") for i in client.images.list(name=repo) for t in i.tags}
    listed = {r["tag"] for r in rows}
    assert before & after <= listed <= after  # every tag listed, none removed
    assert {r["action"] for r in rows} <= {"kept", "would remove"}
    from noa_core.swarm.docker_image import swarm_image_inputs

    inputs = swarm_image_inputs()
    assert all(r["action"] == "kept" for r in rows if r["tag"] in (inputs.tag, inputs.deps_tag))


def test_cli_prune_bad_input_is_one_line_and_exit_2() -> None:
    from typer.testing import CliRunner

    from noa_core.cli.main import app

    res = CliRunner().invoke(app, ["docker", "images", "prune", "--older-than", "-5"])
    assert res.exit_code == 2
    assert "--older-than must be 0 or more minutes" in res.output and len(res.output.strip().splitlines()) == 1
