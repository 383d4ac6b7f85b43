"""The app registry: the ``apps`` table (migration 0003), registration rules, ``noa apps`` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from deploy_helpers import make_app
from sqlalchemy import inspect
from storage_helpers import pg_schema_url
from typer.testing import CliRunner

from noa_core.apps.models import AppRow
from noa_core.apps.registry import AppRegistry, parse_spec
from noa_core.cli.apps_cmd import register as register_apps
from noa_core.config import NoaSettings
from noa_core.errors import BadInput
from noa_core.storage.database import open_database
from noa_core.storage.migrate import current_revision, downgrade, upgrade
from noa_core.storage.models import Base


@pytest.fixture
def settings(tmp_path: Path) -> NoaSettings:
    return NoaSettings(home=tmp_path / "home")


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register_apps(app)
    return app


def run(cli: typer.Typer, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_apps_persist_with_endpoints_health_owner_and_status(settings: NoaSettings, tmp_path: Path) -> None:
    project = make_app(tmp_path, version="1.0", name="shop")
    with AppRegistry(settings) as reg:
        ext = reg.register(parse_spec(name="legacy-shop", kind="external", endpoint="http://127.0.0.1:9/",
                                      owner="ops", service="shop"))
        own = reg.register(parse_spec(name="shop", kind="owned", project_dir=str(project), owner="team-a"))
        reg.set_status("legacy-shop", "serving", "first app of its service")
    assert ext.upstream == "127.0.0.1:9" and ext.health_path == "/health" and ext.endpoint == "http://127.0.0.1:9"
    assert own.project_dir == str(project.resolve()) and own.upstream is None  # not running
    with AppRegistry(settings) as reg:  # a new engine: it is in the database, not in memory
        apps = {a.name: a for a in reg.list()}
        assert reg.serving("shop") is not None and reg.serving("shop").name == "legacy-shop"  # type: ignore[union-attr]
    assert apps["legacy-shop"].status == "serving" and apps["legacy-shop"].owner == "ops"
    assert apps["shop"].status == "registered" and apps["shop"].kind == "owned" and apps["shop"].service == "shop"


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "x", "kind": "external", "endpoint": "ftp://h:1"}, "http://host:port"),
    ({"name": "x", "kind": "external", "endpoint": "http://h:1/some/path"}, "http://host:port"),
    ({"name": "x", "kind": "external"}, "needs an endpoint"),
    ({"name": "x", "kind": "owned", "endpoint": "http://h:1"}, "needs a project directory"),
    ({"name": "../x", "kind": "external", "endpoint": "http://h:1"}, "name:"),
    ({"name": "x", "kind": "external", "endpoint": "http://h:1", "health_path": "health"}, "start with '/'"),
    ({"name": "x", "kind": "vm", "endpoint": "http://h:1"}, "kind:"),
])
def test_bad_registrations_are_refused_on_one_line(fields: dict, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_spec(**fields)
    assert message in exc.value.one_line() and "\n" not in str(exc.value)


def test_owned_app_must_be_startable_and_names_are_unique(settings: NoaSettings, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "noa.yaml").write_text("name: lib\nlanguage: python\n")
    with AppRegistry(settings) as reg:
        with pytest.raises(BadInput, match="no noa.yaml"):
            reg.register(parse_spec(name="a", kind="owned", project_dir=str(tmp_path)))
        with pytest.raises(BadInput, match="no run.command"):
            reg.register(parse_spec(name="a", kind="owned", project_dir=str(tmp_path / "lib")))
        reg.register(parse_spec(name="a", kind="external", endpoint="http://127.0.0.1:9"))
        with pytest.raises(BadInput, match="already registered"):
            reg.register(parse_spec(name="a", kind="external", endpoint="http://127.0.0.1:10"))
        with pytest.raises(BadInput, match="no app named"):
            reg.get("b")
        reg.set_status("a", "serving")
        with pytest.raises(BadInput, match="switch away"):
            reg.unregister("a")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        yield from pg_schema_url()


def test_apps_migration_matches_the_model_and_goes_down_and_up(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert AppRow.__table__.name in Base.metadata.tables
    engine = open_database(url)
    try:
        assert "apps" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "include_object": lambda obj, name, type_, reflected, compare_to:
                    type_ != "table" or name == "apps"})
            diff = compare_metadata(ctx, Base.metadata)
        assert [d for d in diff if "apps" in repr(d)] == []
        downgrade(engine, "0002")
        assert "apps" not in inspect(engine).get_table_names()
        upgrade(engine, "0003")
        with engine.connect() as conn:
            assert current_revision(conn) == "0003"
        assert "apps" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_an_old_database_at_0002_gets_the_apps_table(settings: NoaSettings) -> None:
    engine = open_database(settings)
    try:
        downgrade(engine, "0002")
        assert "apps" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with AppRegistry(settings) as reg:
        assert reg.list() == []


def test_cli_register_list_status_json_and_bad_input(cli: typer.Typer, tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    project = make_app(tmp_path, version="1.0", name="shop")
    code, out, err = run(cli, "apps", "register", "legacy", "external", "http://127.0.0.1:9", "--owner", "ops",
                         "--service", "shop", "--home", home, "--json")
    assert code == 0, err
    assert json.loads(out)["app"]["status"] == "registered"
    code, out, err = run(cli, "apps", "register", "shop", "owned", str(project), "--home", home, "--json")
    assert code == 0, err
    code, out, _ = run(cli, "apps", "list", "--home", home, "--json")
    rows = {a["name"]: a for a in json.loads(out)["apps"]}
    assert code == 0 and set(rows) == {"legacy", "shop"}
    assert rows["legacy"]["owner"] == "ops" and rows["shop"]["kind"] == "owned"
    code, out, _ = run(cli, "apps", "status", "legacy", "--home", home, "--json")
    st = json.loads(out)
    assert code == 0 and st["health"]["ok"] is False and st["route"] is None  # nothing listens on :9
    code, out, err = run(cli, "apps", "register", "x", "vm", "http://127.0.0.1:9", "--home", home)
    assert code == 2 and out == "" and err.startswith("noa: error: kind must be owned or external")
    code, out, err = run(cli, "apps", "status", "nope", "--home", home, "--json")
    assert code == 2 and out == "" and "no app named 'nope'" in err
    code, out, err = run(cli, "apps", "switch", "shop", "--home", home, "--health-timeout", "0")
    assert code == 2 and "must be positive" in err
