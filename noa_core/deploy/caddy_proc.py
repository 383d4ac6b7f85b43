"""One Caddy process of the deploy supervisor, started from a JSON file and driven by its admin API."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from noa_core.deploy.interface import RouterError
from noa_core.deploy.supervisor_common import SupervisorError, caddy_binary


class CaddyProc:
    """One Caddy process started from a JSON file and driven by its admin API."""

    def __init__(self, name: str, dir: Path) -> None:
        self.name = name
        self.json_path = dir / f"{name}.json"
        self.log_path = dir / f"{name}.log"
        self.admin_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write(self, cfg: Mapping[str, Any]) -> None:
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=1))
        os.replace(tmp, self.json_path)

    def start(self, cfg: Mapping[str, Any]) -> None:
        self.write(cfg)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([caddy_binary(), "run", "--config", str(self.json_path)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.admin + "/config/", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise SupervisorError(f"caddy ({self.name}) did not start (see {self.log_path})")

    def dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def load(self, cfg: Mapping[str, Any]) -> None:
        self._send("POST", "/load", cfg)
        self.write(cfg)

    def patch(self, path: str, value: Any, cfg: Mapping[str, Any]) -> None:
        self._send("PATCH", path, value)
        self.write(cfg)

    def _send(self, method: str, path: str, body: Any) -> None:
        try:
            resp = httpx.request(method, self.admin + path, json=body, timeout=10)
        except httpx.HTTPError as exc:
            raise RouterError(f"caddy ({self.name}) admin API unreachable: {exc}") from None
        if resp.status_code >= 300:
            raise RouterError(f"caddy ({self.name}) refused {method} {path}: {resp.text.strip()[:300]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


__all__ = ["CaddyProc"]
