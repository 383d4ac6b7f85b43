"""Shared fixtures: one real Prefect server (the test harness) for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def pytest_configure(config: pytest.Config) -> None:
    """One cache of project environments (resolutions, wheels, venvs) for the whole run, xdist
    workers included: every test's NOA_HOME is new, and rebuilding the same environments in
    each would only test the network. Safe to share: every entry is content-addressed and
    renamed into place whole. A test that needs a cold cache sets NOA_PYENV_CACHE itself."""
    if os.environ.get("NOA_PYENV_CACHE"):
        return
    import tempfile
    from pathlib import Path

    worker = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    shared = Path(tempfile.gettempdir()) / f"noa-test-pyenv-{worker}"
    shared.mkdir(parents=True, exist_ok=True)
    os.environ["NOA_PYENV_CACHE"] = str(shared)


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A real Prefect server on SQLite for this test session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session", autouse=True)
def _stop_deploy_supervisors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Deploy supervisors (and their Caddy and app processes) outlive the flow that started
    them, by design; whatever a test left running under this session's tmp dirs stops here."""
    yield
    from pathlib import Path

    base = Path(tmp_path_factory.getbasetemp())
    for info in base.glob("**/deploy/supervisor.json"):
        try:
            from noa_core.deploy.supervisor_client import stop_supervisor

            stop_supervisor(info.parent.parent)
        except Exception:  # noqa: BLE001 - best effort at session end
            pass
