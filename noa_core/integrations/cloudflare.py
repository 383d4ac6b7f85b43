"""Cloudflare Tunnel configuration for exposing one NOA app (``noa expose``).

Writes a locally-managed tunnel configuration, the format of cloudflared's
``config.yml``::

    tunnel: <tunnel name or UUID>
    credentials-file: <path to the tunnel's credentials JSON>
    ingress:
      - hostname: app.example.com
        service: http://127.0.0.1:8080
      - service: http_status:404        # mandatory catch-all, always last

to ``NOA_HOME/cloudflared/<APP>/config.yml`` and, when ``cloudflared`` is installed,
runs ``cloudflared tunnel --config <that file> run``. cloudflared evaluates ingress rules
top to bottom and refuses a file whose last rule is not a catch-all (no hostname, no
path) or that has a catch-all before the end; :func:`ingress_problems` checks the same.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from noa_core.errors import BadInput

_APP = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$", re.IGNORECASE)
_TUNNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_SERVICE = re.compile(r"^(https?|tcp|ssh|rdp|unix|unix\+tls|smb)://\S+$|^http_status:[1-5]\d\d$|^hello_world$|"
                      r"^bastion$|^socks5$")
CATCH_ALL = {"service": "http_status:404"}


@dataclass(frozen=True)
class TunnelPlan:
    app: str
    port: int
    hostname: str
    tunnel: str
    credentials_file: Path
    config_path: Path
    origin_host: str = "127.0.0.1"

    @property
    def service(self) -> str:
        return f"http://{self.origin_host}:{self.port}"

    def config(self) -> dict[str, Any]:
        return {"tunnel": self.tunnel, "credentials-file": str(self.credentials_file),
                "ingress": [{"hostname": self.hostname, "service": self.service}, dict(CATCH_ALL)]}

    def command(self, cloudflared: str = "cloudflared") -> list[str]:
        return [cloudflared, "tunnel", "--config", str(self.config_path), "run"]


def plan_tunnel(home: Path, app: str, port: int, *, hostname: str | None = None, tunnel: str | None = None,
                credentials_file: Path | None = None, env: Mapping[str, str] | None = None) -> TunnelPlan:
    """Check the inputs and decide every path and name (nothing written yet).

    ``hostname`` defaults to ``APP.$NOA_EXPOSE_DOMAIN``; ``tunnel`` to ``noa-APP``; the
    credentials file to ``~/.cloudflared/<UUID>.json`` when ``tunnel`` is a UUID (where
    ``cloudflared tunnel create`` puts it), else ``NOA_HOME/cloudflared/APP/credentials.json``.
    """
    env = env if env is not None else os.environ
    if not _APP.match(app):
        raise BadInput(f"app name {app!r}: letters, digits, '.', '_' and '-' only (at most 63)")
    if not 1 <= port <= 65535:
        raise BadInput(f"--port must be between 1 and 65535, not {port}")
    if hostname is None and env.get("NOA_EXPOSE_DOMAIN"):
        hostname = f"{app.lower()}.{env['NOA_EXPOSE_DOMAIN'].strip().strip('.')}"
    if not hostname:
        raise BadInput("--hostname is needed (the public name, e.g. app.example.com), or set NOA_EXPOSE_DOMAIN")
    hostname = hostname.strip().lower().rstrip(".")
    if not _HOSTNAME.match(hostname):
        raise BadInput(f"--hostname {hostname!r} is not a DNS name")
    tunnel = tunnel or f"noa-{app.lower()}"
    if not _TUNNEL.match(tunnel):
        raise BadInput(f"--tunnel {tunnel!r}: a tunnel name or UUID")
    folder = home.resolve() / "cloudflared" / app
    if credentials_file is None:
        credentials_file = (Path(env.get("HOME", "~")).expanduser() / ".cloudflared" / f"{tunnel.lower()}.json"
                            if _UUID.match(tunnel) else folder / "credentials.json")
    return TunnelPlan(app=app, port=port, hostname=hostname, tunnel=tunnel,
                      credentials_file=Path(credentials_file).expanduser().absolute(),
                      config_path=folder / "config.yml")


def ingress_problems(config: Mapping[str, Any]) -> list[str]:
    """What cloudflared would refuse in a configuration (empty when it is fine)."""
    problems: list[str] = []
    for key in ("tunnel", "credentials-file"):
        if not isinstance(config.get(key), str) or not config[key]:
            problems.append(f"{key} is missing")
    rules = config.get("ingress")
    if not isinstance(rules, Sequence) or isinstance(rules, str) or not rules:
        return problems + ["ingress has no rules"]
    for i, rule in enumerate(rules, 1):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("service"), str):
            problems.append(f"rule #{i} has no service")
            continue
        if not _SERVICE.match(rule["service"]):
            problems.append(f"rule #{i}: service {rule['service']!r} is not a supported origin")
        catch_all = not rule.get("hostname") and not rule.get("path")
        if catch_all and i < len(rules):
            problems.append(f"rule #{i} matches all requests but it is not the last rule")
        if not catch_all and i == len(rules):
            problems.append("the last ingress rule must match all requests (no hostname, no path)")
    return problems


def write_config(plan: TunnelPlan) -> Path:
    config = plan.config()
    problems = ingress_problems(config)
    if problems:  # cannot happen for a plan from plan_tunnel; guards hand-made plans
        raise BadInput("tunnel configuration refused: " + "; ".join(problems))
    plan.config_path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"# written by `noa expose {plan.app}` (NOA ARK OS); cloudflared tunnel --config {plan.config_path} run\n"
            + yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
    tmp = plan.config_path.with_suffix(".yml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, plan.config_path)
    return plan.config_path


def find_cloudflared(env: Mapping[str, str] | None = None) -> str | None:
    """The cloudflared executable: ``NOA_CLOUDFLARED`` if set, else on PATH."""
    env = env if env is not None else os.environ
    explicit = env.get("NOA_CLOUDFLARED")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("cloudflared", path=env.get("PATH"))
