"""``noa expose``: the cloudflared configuration it writes, and what it does with and
without cloudflared. cloudflared cannot be installed here (not in Debian; its npm and
PyPI wrappers download the binary from GitHub), so the run path uses a fake cloudflared
script that records its arguments and checks the file it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from noa_core.cli.expose_cmd import register
from noa_core.errors import BadInput
from noa_core.integrations.cloudflare import ingress_problems, plan_tunnel

CLI = ("import typer; from noa_core.cli.expose_cmd import register; app = typer.Typer(); register(app); "
       "app.command('version')(lambda: None); app()")


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("version")(lambda: None)  # a second command keeps `expose` a sub-command, as in `noa`
    return app


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=Path(__file__).parent.parent)


def test_without_cloudflared_it_writes_the_config_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("NOA_CLOUDFLARED", raising=False)
    result = CliRunner().invoke(cli(), ["expose", "shop-api", "--port", "8080", "--hostname", "Shop.Example.com",
                                        "--home", str(tmp_path / "home")])
    path = tmp_path / "home" / "cloudflared" / "shop-api" / "config.yml"
    assert result.exit_code == 1
    assert result.output.strip() == f"cloudflared is not installed; wrote {path}"
    config = yaml.safe_load(path.read_text())
    assert config == {"tunnel": "noa-shop-api",
                      "credentials-file": str(tmp_path / "home" / "cloudflared" / "shop-api" / "credentials.json"),
                      "ingress": [{"hostname": "shop.example.com", "service": "http://127.0.0.1:8080"},
                                  {"service": "http_status:404"}]}
    assert ingress_problems(config) == []


def test_tunnel_uuid_uses_cloudflareds_credentials_and_json_output(tmp_path: Path, monkeypatch) -> None:
    uuid = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("NOA_EXPOSE_DOMAIN", "apps.example.org")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = CliRunner().invoke(cli(), ["expose", "blog", "--port", "3000", "--tunnel", uuid, "--no-run", "--json",
                                        "--home", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["hostname"] == "blog.apps.example.org" and doc["status"] == "written"
    assert doc["credentials_file"] == str(tmp_path / "user" / ".cloudflared" / f"{uuid}.json")
    assert doc["command"][1:] == ["tunnel", "--config", doc["config_path"], "run"]


def test_fake_cloudflared_is_run_with_the_config(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.json"
    fake = bin_dir / "cloudflared"
    fake.write_text(f"""#!{sys.executable}
import json, sys, yaml
json.dump(sys.argv[1:], open({str(record)!r}, "w"))
config = yaml.safe_load(open(sys.argv[sys.argv.index("--config") + 1]))
print("INF Starting tunnel tunnelID=" + config["tunnel"])  # on stdout: must not spoil --json
sys.exit(0 if config["ingress"][-1] == {{"service": "http_status:404"}} else 3)
""")
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NOA_HOME": str(tmp_path / "home")}
    proc = run_cli(["expose", "shop", "--port", "8080", "--hostname", "shop.example.com", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ran"] is True and doc["exit_code"] == 0 and doc["cloudflared"] == str(fake)
    assert json.loads(record.read_text()) == ["tunnel", "--config", doc["config_path"], "run"]
    assert "INF Starting tunnel tunnelID=noa-shop" in proc.stderr
    assert "credentials file" in proc.stderr  # no credentials yet: said, not fatal


@pytest.mark.parametrize("args, message", [
    (["expose", "shop", "--port", "0", "--hostname", "a.example.com"], "--port must be between 1 and 65535"),
    (["expose", "../etc", "--port", "80", "--hostname", "a.example.com"], "app name"),
    (["expose", "shop", "--port", "80", "--hostname", "not a host"], "is not a DNS name"),
    (["expose", "shop", "--port", "80"], "--hostname is needed"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.delenv("NOA_EXPOSE_DOMAIN", raising=False)
    result = CliRunner().invoke(cli(), [*args, "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("noa: error: ") and message in result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "cloudflared").exists()


def test_ingress_rules_are_checked_like_cloudflared() -> None:
    plan = plan_tunnel(Path("/tmp/h"), "a", 80, hostname="a.example.com")
    assert ingress_problems(plan.config()) == []
    assert ingress_problems({"tunnel": "t", "credentials-file": "/c", "ingress": [
        {"service": "http_status:404"}, {"hostname": "a.example.com", "service": "http://127.0.0.1:1"}]}) == [
        "rule #1 matches all requests but it is not the last rule",
        "the last ingress rule must match all requests (no hostname, no path)"]
    assert ingress_problems({"ingress": [{"service": "ftp://x"}]}) == [
        "tunnel is missing", "credentials-file is missing", "rule #1: service 'ftp://x' is not a supported origin"]
    with pytest.raises(BadInput):
        plan_tunnel(Path("/tmp/h"), "a", 80, hostname="a.example.com", tunnel="bad name")
