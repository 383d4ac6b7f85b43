"""The Docker engine for the tests that need a real one: a client, or the module skipped with one line."""

from __future__ import annotations

from typing import Any

import pytest


def docker_engine(timeout: int = 60) -> Any:
    """A connected ``docker`` client; without an engine, skip the whole module saying how to start one."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        pytest.skip(f"no Docker engine ({type(exc).__name__}): start one with scripts/dockerd.sh start",
                    allow_module_level=True)
