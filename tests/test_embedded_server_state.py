"""Which embedded Prefect server a `noa` command uses: never a second one beside a live, busy one.

A second server on the same NOA_HOME would open the same SQLite database and split runs and
deployments between two APIs (seen: `noa swarm run` started one on the next port while
`noa swarm up`'s was busy, and found no deployment there)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from noa_core.orchestration.prefect_server import EmbeddedPrefectServer, PrefectServerError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def process(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose command line is ``request.param`` (after the interpreter's ``-c``)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *request.param])
    yield proc
    proc.kill()
    proc.wait()


def record(home: Path, pid: int, port: int) -> EmbeddedPrefectServer:
    home.mkdir(parents=True, exist_ok=True)
    (home / "server.json").write_text(json.dumps({"pid": pid, "port": port}))
    return EmbeddedPrefectServer(home)


@pytest.mark.parametrize("process", [["unrelated"]], indirect=True)
def test_a_recorded_pid_now_owned_by_another_program_is_not_the_server(process: subprocess.Popen[bytes],
                                                                       tmp_path: Path) -> None:
    server = record(tmp_path / "prefect", process.pid, free_port())
    assert server.running(busy_wait_s=5) is None  # at once: a new server may be started


@pytest.mark.parametrize("process", [["prefect", "server", "start"]], indirect=True)
def test_a_live_server_that_does_not_answer_is_waited_for_then_reported_not_replaced(
        process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    # the port stays taken (it accepts connections and never answers, like a server that is stuck),
    # so no other process of a parallel test run can start answering on it meanwhile
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        server = record(tmp_path / "prefect", process.pid, port)
        with pytest.raises(PrefectServerError,
                           match=rf"pid {process.pid}, port {port}\) is running but has not answered"):
            server.running(busy_wait_s=1)
        with pytest.raises(PrefectServerError):
            server.ensure(timeout_s=1)
    assert json.loads((tmp_path / "prefect" / "server.json").read_text())["pid"] == process.pid
