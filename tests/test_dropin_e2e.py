"""`noa watch` as a user runs it: a subprocess serving the drop-in deployment against the
session's real Prefect server, real files dropped in, real flow runs, a real SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from dropin_helpers import read_journal, tar_gz_of, write_project, zip_slip
from intake_helpers import make_repo

TOP_LEVEL_KEPT = {"processed", "failed", "quarantine", ".work", ".runs", ".journal.jsonl", ".watcher.lock"}


def noa_env(home: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NOA_"))}
    env.update(PREFECT_API_URL=api_url, NOA_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="250")
    return env


class Watcher:
    """``noa watch`` in a subprocess; stderr lines collected as they come."""

    def __init__(self, home: Path, api_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home), "--no-ai", *args],
            cwd=home.parent, env=noa_env(home, api_url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.stdout = ""
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if os.environ.get("DROPIN_TEST_ECHO"):
                print(f"[{time.strftime('%H:%M:%S')}] {line.rstrip()}", flush=True)

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if pred(line):
                    return line
            seen = len(self.lines)
            if self.proc.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.1)
        raise AssertionError(f"no matching line within {timeout} s (exit {self.proc.poll()}):\n"
                             + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        for t in self._readers:
            t.join(10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish(30)


def wait_finished(drop_in: Path, count: int, timeout: float, watcher: Watcher) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = [e for e in read_journal(drop_in) if e["ev"] == "finished"]
        if len(finished) >= count:
            return finished
        if watcher.proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{count} items not finished in {timeout} s; journal: {read_journal(drop_in)}\n"
                         + "\n".join(watcher.lines[-60:]))


def flow_runs_of(home: Path) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    from deployments.code_drop import deployment_name

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(f"code_drop/{deployment_name(home)}")
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[dep.id])))


def reports_by_source(home: Path) -> Counter:
    return Counter(json.loads(p.read_text())["source"] for p in (home / "reports").glob("*.json"))


def copy_in(items: list[Path], drop_in: Path) -> None:
    """Copy items into the folder all at once, each by its own thread (as a file manager does)."""
    def copy(item: Path) -> None:
        if item.is_dir():
            shutil.copytree(item, drop_in / item.name)
        else:
            shutil.copy2(item, drop_in / item.name)

    threads = [threading.Thread(target=copy, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def project_tarball(tmp: Path, name: str) -> bytes:
    src = write_project(tmp / f"{name}-src" / name, name, tests=3)
    return tar_gz_of(src, tmp / f"{name}.build.tar.gz").read_bytes()


def test_items_dropped_together_while_watching(prefect_api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop_in = home / "drop-in"
    stage = tmp_path / "stage"
    stage.mkdir()
    write_project(stage / "alpha", "alphaproj")
    write_project(stage / "beta", "betaproj", tests=4)
    tar_gz_of(write_project(tmp_path / "gamma-src" / "gamma", "gammaproj"), stage / "gamma.tar.gz")
    repo = write_project(tmp_path / "repos" / "deltaproj", "deltaproj")
    make_repo(repo, {})
    (stage / "delta.url").write_text(f"# a local git repository\n{repo}\n")
    zip_slip(stage / "slip.zip")
    slow_bytes = project_tarball(tmp_path, "slowproj")

    watcher = Watcher(home, prefect_api_url, "--settle", "1.5", "--concurrency", "2")
    try:
        watcher.wait_for(lambda line: line.startswith("watching"), 180)
        writer_done: list[float] = []

        def slow_writer() -> None:  # straight under its final name, in chunks, over ~4 s
            with open(drop_in / "slow.tar.gz", "wb") as fh:
                step = max(1, len(slow_bytes) // 6)
                for i in range(0, len(slow_bytes), step):
                    fh.write(slow_bytes[i:i + step])
                    fh.flush()
                    time.sleep(0.7)
            writer_done.append(time.time())

        slow = threading.Thread(target=slow_writer)
        slow.start()
        copy_in(sorted(stage.iterdir()), drop_in)
        # meanwhile, a second watcher of the same folder is refused
        second = subprocess.run([sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home), "--once"],
                                cwd=tmp_path, env=noa_env(home, prefect_api_url), capture_output=True, text=True,
                                timeout=300, check=False)
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"another `noa watch` (pid {watcher.proc.pid}) already watches" in second.stderr
        slow.join()
        finished = wait_finished(drop_in, 6, 420, watcher)
        watcher.proc.send_signal(signal.SIGTERM)
        assert watcher.finish(60) == 0, "\n".join(watcher.lines[-40:])
    finally:
        watcher.kill()

    outcomes = {e["key"]: e["outcome"] for e in finished}
    names = {e["key"]: e["name"] for e in read_journal(drop_in) if e["ev"] == "taken"}
    assert sorted((names[k], o) for k, o in outcomes.items()) == [
        ("alpha", "processed"), ("beta", "processed"), ("delta.url", "processed"), ("gamma.tar.gz", "processed"),
        ("slip.zip", "quarantined"), ("slow.tar.gz", "processed")]
    # every good item dropped exactly once: one flow run and one report each
    runs = flow_runs_of(home)
    assert Counter(r.name for r in runs) == Counter(["alpha", "beta", "delta.url", "gamma.tar.gz", "slip.zip",
                                                     "slow.tar.gz"])
    assert sorted(r.state_type.value for r in runs).count("COMPLETED") == 5
    by_source = reports_by_source(home)
    assert len(by_source) == 5 and set(by_source.values()) == {1}
    assert str(repo) in by_source
    # items filed with their reports next to them
    processed = drop_in / "processed"
    for name in ("alpha", "beta", "gamma.tar.gz", "delta.url", "slow.tar.gz"):
        assert (processed / name).exists(), name
        report = json.loads((processed / f"{name}.report.json").read_text())
        assert report["tests"]["status"] == "passed" and report["drop_in"]["item"] == name
        assert (processed / f"{name}.report.md").read_text().strip()
    assert json.loads((processed / "beta.report.json").read_text())["tests"]["passed"] == 4
    # the hostile archive: quarantined with its reason, never extracted anywhere
    reason = (drop_in / "quarantine" / "slip.zip.reason.txt").read_text()
    assert reason.startswith("quarantined: HostileInput:") and "escaped.txt" in reason
    assert (drop_in / "quarantine" / "slip.zip").is_file()
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("escaped.txt"))
    # the slow archive was taken only once it was whole, and all of it was dropped
    slow_run = next(r for r in runs if r.name == "slow.tar.gz")
    assert slow_run.created.timestamp() >= writer_done[0]
    slow_report = json.loads((processed / "slow.tar.gz.report.json").read_text())
    assert slow_report["tests"]["passed"] == 3 and slow_report["files"] >= 3
    # nothing left behind at the top of the folder or in flight
    assert {p.name for p in drop_in.iterdir()} == TOP_LEVEL_KEPT
    assert list((drop_in / ".work").iterdir()) == [] and list((drop_in / ".runs").iterdir()) == []
    # progress on stderr: taken, running with its flow run URL, done/quarantined
    text = "\n".join(watcher.lines)
    assert "quarantined slip.zip" in text and "done        alpha" in text
    assert any(line.startswith("running") and "/runs/flow-run/" in line for line in watcher.lines)


def _flow_run_processes(watcher_pid: int) -> list[int]:
    """Processes whose environment says they were started by that watcher."""
    found = []
    needle = f"NOA_DROPIN_WATCHER_PID={watcher_pid}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == watcher_pid:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_killed_watcher_restarts_without_losing_or_repeating_items(prefect_api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop_in = home / "drop-in"
    stage = tmp_path / "stage"
    for name in ("one", "two"):
        write_project(stage / name, f"{name}proj")
    tar_gz_of(write_project(tmp_path / "three-src" / "three", "threeproj"), stage / "three.tar.gz")

    watcher = Watcher(home, prefect_api_url, "--settle", "0.5", "--concurrency", "1")
    try:
        watcher.wait_for(lambda line: line.startswith("watching"), 180)
        copy_in(sorted(stage.iterdir()), drop_in)
        first = watcher.wait_for(lambda line: line.startswith("running"), 120)
        first_name = first.split()[1]
        # wait until its flow run process is really at work, then kill the watcher alone
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = {r.name: r for r in flow_runs_of(home)}
            if first_name in runs and runs[first_name].state_type.value == "RUNNING":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the first run never reached RUNNING:\n" + "\n".join(watcher.lines[-40:]))
        pid = watcher.proc.pid
        assert _flow_run_processes(pid), "no flow run process found for the watcher"
        os.kill(pid, signal.SIGKILL)
        watcher.finish(30)
    finally:
        watcher.kill()
    # its flow run process died with it (PR_SET_PDEATHSIG): nothing runs the item behind our back
    deadline = time.monotonic() + 15
    while _flow_run_processes(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _flow_run_processes(pid) == []
    killed_run = next(r for r in flow_runs_of(home) if r.name == first_name)
    assert killed_run.state_type.value == "RUNNING"  # nobody told Prefect

    restart = subprocess.run(
        [sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home), "--no-ai", "--once", "--json",
         "--settle", "0.5", "--concurrency", "2"],
        cwd=tmp_path, env=noa_env(home, prefect_api_url), capture_output=True, text=True, timeout=600, check=False)
    assert restart.returncode == 0, restart.stderr[-4000:]
    items = {i["name"]: i for i in json.loads(restart.stdout)["items"]}
    assert sorted(items) == ["one", "three.tar.gz", "two"]
    assert {i["outcome"] for i in items.values()} == {"processed"}
    assert items[first_name]["attempt"] == 2
    assert "interrupted" in restart.stderr

    # nothing processed twice: one completed run and one report per item; the cut-off run is Crashed
    runs = flow_runs_of(home)
    completed = Counter(r.name for r in runs if r.state_type.value == "COMPLETED")
    assert completed == Counter(["one", "two", "three.tar.gz"])
    assert next(r for r in runs if r.id == killed_run.id).state_type.value == "CRASHED"
    assert len(runs) == 4
    assert sorted(reports_by_source(home).values()) == [1, 1, 1]
    events = [e["ev"] for e in read_journal(drop_in) if e.get("key") == items[first_name]["key"]]
    assert events == ["taken", "started", "interrupted", "started", "finished"]
    # nothing lost
    assert {p.name for p in (drop_in / "processed").iterdir() if not p.name.endswith((".json", ".md"))} == {
        "one", "two", "three.tar.gz"}
    assert {p.name for p in drop_in.iterdir()} == TOP_LEVEL_KEPT

    # and a third start finds nothing to do, although the journal is all that remembers
    again = subprocess.run(
        [sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home), "--no-ai", "--once", "--json",
         "--settle", "0.2"],
        cwd=tmp_path, env=noa_env(home, prefect_api_url), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["items"] == []
    assert len(flow_runs_of(home)) == 4


@pytest.mark.slow
def test_stopped_watcher_releases_its_run_and_the_next_start_runs_it(prefect_api_url: str, tmp_path: Path) -> None:
    """Ctrl-C while an item runs: its run is cancelled, the item stays taken, and the next
    start runs it again (not counted as an interruption)."""
    home = tmp_path / "home"
    drop_in = home / "drop-in"
    watcher = Watcher(home, prefect_api_url, "--settle", "0.5")
    try:
        watcher.wait_for(lambda line: line.startswith("watching"), 180)
        write_project(tmp_path / "stage" / "solo", "soloproj")
        copy_in([tmp_path / "stage" / "solo"], drop_in)
        watcher.wait_for(lambda line: line.startswith("running"), 120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = flow_runs_of(home)
            if runs and runs[0].state_type.value == "RUNNING":
                break
            time.sleep(0.2)
        watcher.proc.send_signal(signal.SIGINT)
        assert watcher.finish(120) == 0, "\n".join(watcher.lines[-40:])
    finally:
        watcher.kill()
    assert [e["ev"] for e in read_journal(drop_in)] == ["taken", "started", "released"]
    (first_run,) = flow_runs_of(home)
    assert first_run.state_type.value in ("CANCELLED", "CRASHED")
    assert len(list((drop_in / ".work").iterdir())) == 1

    restart = subprocess.run(
        [sys.executable, "-m", "noa_core.cli", "watch", "--home", str(home), "--no-ai", "--once", "--json",
         "--settle", "0.2"],
        cwd=tmp_path, env=noa_env(home, prefect_api_url), capture_output=True, text=True, timeout=600, check=False)
    assert restart.returncode == 0, restart.stderr[-4000:]
    (item,) = json.loads(restart.stdout)["items"]
    assert (item["name"], item["outcome"], item["attempt"]) == ("solo", "processed", 2)
    assert [e["ev"] for e in read_journal(drop_in)] == ["taken", "started", "released", "resumed", "started",
                                                        "finished"]
    assert Counter(r.state_type.value for r in flow_runs_of(home))["COMPLETED"] == 1


def _sdist(name: str, version: str, dest: Path) -> Path:
    """A real sdist from PyPI, downloaded once into the shared test cache."""
    cache = Path(os.environ.get("NOA_TEST_SDIST_CACHE") or Path.home() / ".cache" / "noa-test-sdists")
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"{name}-{version}.tar.gz"
    if not archive.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                        f"{name}=={version}", "-d", str(cache)], check=True, capture_output=True, timeout=600)
    return Path(shutil.copy2(archive, dest / archive.name))


@pytest.mark.slow
@pytest.mark.network
def test_ten_items_with_real_sdists_each_dropped_once(prefect_api_url: str, tmp_path: Path) -> None:
    """The issue's scene: ten items at once, real sdists among them, a hostile and a late one."""
    home = tmp_path / "home"
    drop_in = home / "drop-in"
    stage = tmp_path / "stage"
    stage.mkdir()
    write_project(stage / "alpha", "alphaproj")
    write_project(stage / "beta", "betaproj", tests=4)
    tar_gz_of(write_project(tmp_path / "gamma-src" / "gamma", "gammaproj"), stage / "gamma.tar.gz")
    local_repo = write_project(tmp_path / "repos" / "deltaproj", "deltaproj")
    make_repo(local_repo, {})
    (stage / "delta.url").write_text(f"{local_repo}\n")
    url_repo = write_project(tmp_path / "repos" / "epsilonproj", "epsilonproj")
    make_repo(url_repo, {})
    (stage / "epsilon.url").write_text(f"file://{url_repo}\n")
    (stage / "toolz.source").write_text("pypi:toolz==1.2.0\n")
    _sdist("cachetools", "8.0.2", stage)
    (stage / "more.txt").write_text("pypi:cachetools==8.0.1\n")
    zip_slip(stage / "slip.zip")
    slow_bytes = project_tarball(tmp_path, "slowproj")

    watcher = Watcher(home, prefect_api_url, "--settle", "1.5", "--concurrency", "2")
    try:
        watcher.wait_for(lambda line: line.startswith("watching"), 180)

        def slow_writer() -> None:
            with open(drop_in / "slow.tar.gz", "wb") as fh:
                step = max(1, len(slow_bytes) // 5)
                for i in range(0, len(slow_bytes), step):
                    fh.write(slow_bytes[i:i + step])
                    fh.flush()
                    time.sleep(0.7)

        slow = threading.Thread(target=slow_writer)
        slow.start()
        copy_in(sorted(stage.iterdir()), drop_in)
        slow.join()
        finished = wait_finished(drop_in, 10, 900, watcher)
        watcher.proc.send_signal(signal.SIGTERM)
        assert watcher.finish(60) == 0, "\n".join(watcher.lines[-40:])
    finally:
        watcher.kill()

    names = {e["key"]: e["name"] for e in read_journal(drop_in) if e["ev"] == "taken"}
    outcomes = sorted((names[e["key"]], e["outcome"]) for e in finished)
    assert outcomes == sorted([(n, "processed") for n in (
        "alpha", "beta", "gamma.tar.gz", "delta.url", "epsilon.url", "toolz.source", "cachetools-8.0.2.tar.gz",
        "more.txt", "slow.tar.gz")] + [("slip.zip", "quarantined")])
    runs = flow_runs_of(home)
    assert len(runs) == 10 and len({r.name for r in runs}) == 10
    by_source = reports_by_source(home)
    assert len(by_source) == 9 and set(by_source.values()) == {1}
    toolz = json.loads((drop_in / "processed" / "toolz.source.report.json").read_text())
    assert toolz["project"] == "toolz" and toolz["tests"]["passed"] == 192
    cachetools = json.loads((drop_in / "processed" / "cachetools-8.0.2.tar.gz.report.json").read_text())
    assert cachetools["tests"]["passed"] == 476
