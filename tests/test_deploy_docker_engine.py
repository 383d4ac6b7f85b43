"""The Docker deploy target against a REAL Docker Engine (``scripts/dockerd.sh start``).

Images are built from NOA's registry-free runtime base image (debootstrap + docker import,
built once and reused by its content-hash tag); blue and green are real containers on the
host network, routed by NOA's real Caddy, under load from another process. Without an
engine every test here skips with one line saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import (
    ROOT,
    body_of,
    cleanup_home,
    deploy,
    failed_share,
    load,
    make_app,
)

from noa_core.deploy.docker_housekeeping import remove_containers, remove_images
from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR, RUNTIME, ensure_base_image
from noa_core.deploy.docker_names import home_label
from noa_core.deploy.docker_target import DockerTarget
from noa_core.deploy.run import rollback_app
from noa_core.deploy.supervisor_client import ensure_supervisor

_ENGINE = DockerTarget().availability()
pytestmark = pytest.mark.skipif(not _ENGINE.ok, reason=f"no Docker engine (scripts/dockerd.sh start): {_ENGINE.reason}")


@pytest.fixture(scope="module")
def base_image() -> str:
    """NOA's runtime base image: reused when present (building it takes minutes, once per machine)."""
    cache = Path(os.environ.get("NOA_DOCKER_CACHE") or DEFAULT_CACHE_DIR)
    return ensure_base_image(RUNTIME, cache_dir=cache).tag


@pytest.fixture
def home(tmp_path: Path, base_image: str) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    cleanup_home(h)
    remove_containers(h)
    remove_images(h)


def containers(home: Path, **labels: str) -> list[dict[str, object]]:
    """This home's NOA containers, any state, as {name, status, labels}."""
    client = DockerTarget().client
    want = [f"noa.home={home_label(home)}", *(f"noa.{k}={v}" for k, v in labels.items())]
    return [{"name": c.name, "status": c.status, "labels": c.labels}
            for c in client.containers.list(all=True, filters={"label": want})]


def stable(home: Path, tmp_path: Path) -> tuple[dict, str]:
    first = deploy(home, make_app(tmp_path, version="1.0"), "production", target="docker")
    assert first["outcome"] == "promoted", first["reason"]
    return first, f"http://{first['endpoint']}/hello"


def test_base_image_is_reused_by_its_hash_tag_and_runs_python_as_the_app_user(base_image: str) -> None:
    again = ensure_base_image(RUNTIME, cache_dir=Path(os.environ.get("NOA_DOCKER_CACHE") or DEFAULT_CACHE_DIR))
    assert again.how == "reused" and again.tag == base_image == RUNTIME.tag
    assert again.content_hash == RUNTIME.content_hash()
    out = DockerTarget().client.containers.run(base_image, ["sh", "-c", "python --version; id -u"], user="10001",
                                               network_mode="none", remove=True)
    assert out.decode().split() == ["Python", "3.11.2", "10001"]


def test_docker_canary_of_a_good_release_is_promoted_with_no_failed_request(home: Path, tmp_path: Path) -> None:
    first, url = stable(home, tmp_path)
    assert first["instance"]["data"]["network"] == "host"
    (blue,) = containers(home, app="svc")
    assert blue["labels"]["noa.colour"] == "blue" and blue["labels"]["noa.release"] == first["release"]
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0"), "production", target="docker", interval_s=1.0)
    failed, total, _ = failed_share(hits)
    print(f"\ndocker canary under load: {failed}/{total} failed; steps "
          + ", ".join(f"{s['name']} {s['duration_s']:.1f}s {s['verdict']}" for s in res["steps"]))
    assert res["outcome"] == "promoted", res["reason"]
    canary_steps = [s for s in res["steps"] if s["name"].startswith("canary")]
    assert [s["weight"] for s in canary_steps] == [5, 25, 50, 100]
    assert canary_steps[-1]["verdict"] == "passed" and canary_steps[-1]["metrics"]["canary"]["requests"] > 0
    assert failed == 0 and total > 100
    assert body_of(url) == "hello from 2.0\n"
    # the old (blue) container is removed; the new one is green and labelled with its release
    (green,) = containers(home, app="svc")
    assert green["status"] == "running" and green["labels"]["noa.colour"] == "green"
    assert green["labels"]["noa.release"] == res["release"] and green["labels"]["noa.env"] == "production"

    # a rollback (target inferred from the active release) goes back to blue's release; green is removed
    back = rollback_app(home, "svc", "production")
    assert back["outcome"] == "rolled_back" and back["release"] == first["release"], back["reason"]
    assert body_of(url) == "hello from 1.0\n"
    (again,) = containers(home, app="svc")
    assert again["labels"]["noa.release"] == first["release"] and again["labels"]["noa.colour"] == "blue"

    # `noa deploy-supervisor stop` (the real CLI) leaves no NOA container of this home, running or not
    p = subprocess.run([sys.executable, "-m", "noa_core.cli", "deploy-supervisor", "stop", "--home", str(home)],
                       check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr
    assert "removed 1 Docker container" in p.stderr
    assert containers(home) == []


def test_docker_canary_answering_500_is_rolled_back_to_weight_0_and_its_container_removed(
        home: Path, tmp_path: Path) -> None:
    first, url = stable(home, tmp_path)
    with load(url, tmp_path / "load.txt", rps=100) as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", mode="error"), "production", target="docker",
                     interval_s=2.0)
        time.sleep(0.5)
    bad = [h for h in hits if h.failed]
    print(f"\ndocker 500 canary: {len(bad)}/{len(hits)} failed; {res['reason']}")
    assert res["outcome"] == "rolled_back" and "error rate" in res["reason"]
    assert res["steps"][-1]["verdict"] == "failed"
    assert all(h.t <= res["weight_zero_at"] + 0.3 for h in bad)  # nothing fails once the canary's weight is 0
    routes = ensure_supervisor(home).call("status")["routes"]["svc-production"]["upstreams"]
    assert [(u["label"], u["weight"]) for u in routes] == [(first["release"], 1)]
    assert containers(home, release=res["release"]) == []  # the canary's container is gone
    (left,) = containers(home, app="svc")
    assert left["labels"]["noa.release"] == first["release"] and left["status"] == "running"
    assert body_of(url) == "hello from 1.0\n"


def test_failed_image_build_fails_the_deploy_with_the_build_log_and_the_stable_release_keeps_serving(
        home: Path, tmp_path: Path, base_image: str) -> None:
    first, url = stable(home, tmp_path)
    missing = make_app(tmp_path, version="2.0")
    (missing / "Dockerfile").write_text(f"FROM {base_image}\nWORKDIR /app\nCOPY app.py /app/\n"
                                        "COPY config/settings.ini /app/config/\nCMD [\"python\", \"app.py\"]\n")
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, missing, "production", target="docker", interval_s=1.0)
    print(f"\nbuild failure: {res['reason']}")
    assert res["outcome"] == "failed" and res["steps"][0]["name"] == "build"
    assert "config/settings.ini" in res["reason"] and "still serving" in res["reason"]
    tail = res["steps"][0]["metrics"]["log_tail"]
    assert any(line.startswith("Step ") for line in tail) and "settings.ini" in tail[-1]
    assert failed_share(hits)[0] == 0 and len(hits) > 20
    assert body_of(url) == "hello from 1.0\n"
    (only,) = containers(home)
    assert only["labels"]["noa.release"] == first["release"]


SIX_APP = """import os, six
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("six " + six.__version__ + "\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.mark.network
def test_requirements_are_installed_offline_in_the_image_and_a_bad_one_fails_the_deploy(
        home: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path, version="1.0")
    (app / "app.py").write_text(SIX_APP)
    (app / "requirements.txt").write_text("six==1.16.0\n")
    res = deploy(home, app, "staging", target="docker")
    assert res["outcome"] == "promoted", res["reason"]
    url = f"http://{res['endpoint']}/"
    assert body_of(url) == "six 1.16.0\n"  # from the wheel fetched outside, installed with --no-index
    bad = make_app(tmp_path, version="2.0")
    (bad / "requirements.txt").write_text("noa-surely-not-a-package-4d1f9c==0.0.1\n")
    res2 = deploy(home, bad, "staging", target="docker")
    print(f"\nrequirement failure: {res2['reason']}")
    assert res2["outcome"] == "failed" and "could not be fetched" in res2["reason"]
    assert "No matching distribution found for noa-surely-not-a-package-4d1f9c==0.0.1" in res2["reason"]
    assert body_of(url) == "six 1.16.0\n"


def test_docker_canary_whose_container_crashes_is_rolled_back_after_the_engine_restarts_it(
        home: Path, tmp_path: Path) -> None:
    _, url = stable(home, tmp_path)
    with load(url, tmp_path / "load.txt") as hits:
        res = deploy(home, make_app(tmp_path, version="2.0", mode="crash", crash_after=5), "production",
                     target="docker", interval_s=1.5)
    failed, total, _ = failed_share(hits)
    print(f"\ncrashing docker canary: {res['reason']}; {failed}/{total} failed")
    assert res["outcome"] == "rolled_back" and "canary down" in res["reason"]
    # the engine's on-failure restart policy, read from the container state ("restarting after a crash" or
    # "the engine restarted the container 1x ...", depending on when the analysis looked)
    assert "restart" in res["reason"]
    assert containers(home, release=res["release"]) == []
    assert body_of(url) == "hello from 1.0\n"
