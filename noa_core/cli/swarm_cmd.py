"""``noa swarm``: language swarms as Prefect work pools, and swarm runs.

::

    noa swarm up [--pools python-swarm,rust-swarm,go-swarm] [--workers N]
    noa swarm status
    noa swarm down [--pools ...]
    noa swarm run DIR [--languages python,rust] [--shards N] [--distributed [--docker]] [--fresh] [--json]

``up`` creates the process work pools, deploys each swarm flow to its pool (from this
repository on local disk) and starts N workers per pool, each its own process (pids
printed, kept in ``NOA_HOME/swarm/workers.json``); ``down`` stops exactly those. ``run``
runs the master ``swarm`` flow: embedded by default (swarms as concurrent in-process
subflows), or ``--distributed`` (run_deployment; the workers run the swarms).
``--distributed --docker`` puts the Python swarm on the ``python-swarm-docker`` pool:
``up --pools python-swarm-docker`` builds or reuses the swarm image, creates that docker
pool and starts ``prefect worker --type docker`` workers (deployments/swarm_docker.py).

Nothing here imports Prefect before :func:`connect_prefect` has chosen the server.
"""


import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

_POOL_OF = {"python-swarm": "python", "rust-swarm": "rust", "go-swarm": "go", "python-swarm-docker": "python"}
DOCKER_POOLS = ("python-swarm-docker",)


def _pools(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def register(app: typer.Typer) -> None:
    """Add ``noa swarm ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    swarm_app = typer.Typer(no_args_is_help=True, help="Language swarms: work pools, workers, swarm runs.")
    app.add_typer(swarm_app, name="swarm")
    PoolsOption = Annotated[str, typer.Option("--pools", help="comma-separated work pools")]

    def state_dir(home: Path | None) -> Path:
        return cli._settings(home).layout().root / "swarm"

    def connect(home: Path | None, console: Console) -> None:
        from noa_core.cli.connect import connect_prefect

        connect_prefect(cli._settings(home), console)

    @swarm_app.command("up")
    def up(
        pools: PoolsOption = "python-swarm,rust-swarm,go-swarm",
        workers: Annotated[int, typer.Option("--workers", help="worker processes per pool")] = 2,
        home: cli.HomeOption = None,
        no_deploy: Annotated[bool, typer.Option("--no-deploy", help="do not (re)deploy the swarm flows")] = False,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Create the work pools, deploy the swarm flows, start N workers per pool (python-swarm-docker:
        the swarm image is built or reused, and its workers are `prefect worker --type docker`)."""
        import os

        from noa_core.swarm.workers import start_workers

        console = cli._err()
        names = _pools(pools)
        unknown = [p for p in names if p not in _POOL_OF]
        if not names or unknown:
            raise cli._bad(f"--pools takes {', '.join(_POOL_OF)} (got {', '.join(unknown) or 'nothing'})")
        if not 1 <= workers <= 32:
            raise cli._bad("--workers must be between 1 and 32")
        try:
            connect(home, console)
            from deployments.swarm_pools import deploy_swarms, ensure_pools

            process = [p for p in names if p not in DOCKER_POOLS]
            created = ensure_pools(process) if process else {}
            deployed = {} if no_deploy or not process else deploy_swarms({_POOL_OF[p]: p for p in process})
            if any(p in DOCKER_POOLS for p in names):
                created_docker, dep = _docker_pool(cli._settings(home), console, deploy=not no_deploy)
                created["python-swarm-docker"] = created_docker
                if dep:
                    deployed["python-docker"] = dep
            env = {"PREFECT_API_URL": os.environ["PREFECT_API_URL"]}
            if home is not None:
                env["NOA_HOME"] = str(home)
            started = start_workers(names, workers, state_dir=state_dir(home), env=env)
        except NoaError as exc:
            raise cli._fail(exc) from None
        doc = {"pools": {p: ("created" if c else "existing") for p, c in created.items()},
               "deployments": deployed,
               "workers": [{"pool": w.pool, "name": w.name, "pid": w.pid, "log": w.log} for w in started]}
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        for pool, how in doc["pools"].items():
            console.print(f"pool {pool}: {how}")
        for lang, dep in deployed.items():
            console.print(f"deployment {lang}: {dep}")
        for w in started:
            typer.echo(f"{w.pool}\t{w.name}\tpid {w.pid}\tlog {w.log}")

    @swarm_app.command("status")
    def status(home: cli.HomeOption = None, as_json: cli.JsonOption = False) -> None:
        """The worker processes `noa swarm up` started that are still running."""
        from noa_core.swarm.workers import alive_workers

        alive = alive_workers(state_dir(home))
        if as_json:
            typer.echo(json.dumps([{"pool": w.pool, "name": w.name, "pid": w.pid} for w in alive]))
            return
        if not alive:
            typer.echo("no swarm workers running")
            raise typer.Exit(1)
        for w in alive:
            typer.echo(f"{w.pool}\t{w.name}\tpid {w.pid}")

    @swarm_app.command("down")
    def down(pools: Annotated[Optional[str], typer.Option("--pools", help="only these pools")] = None,
             home: cli.HomeOption = None) -> None:
        """Stop the workers `noa swarm up` started (by their recorded pids)."""
        from noa_core.swarm.workers import stop_workers

        stopped = stop_workers(state_dir(home), pools=_pools(pools) if pools else None)
        for w in stopped:
            typer.echo(f"stopped {w.name} (pid {w.pid})")
        if not stopped:
            typer.echo("no swarm workers were running")

    @swarm_app.command("run")
    def run(
        project_dir: Annotated[Path, typer.Argument(help="the project directory")],
        languages: Annotated[Optional[str],
                             typer.Option("--languages", help="python,rust,go (default: detected)")] = None,
        shards: Annotated[int, typer.Option("--shards", help="test shards (agents) for the Python swarm")] = 2,
        distributed: Annotated[bool,
                               typer.Option("--distributed", help="run the swarms on the pools' workers")] = False,
        fresh: Annotated[bool, typer.Option("--fresh", help="do not reuse the hive's results")] = False,
        docker: Annotated[bool, typer.Option("--docker", help="with --distributed: the Python swarm on the "
                                                               "python-swarm-docker pool")] = False,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Run the swarms on DIR: tests (sharded), lint, static analysis, benchmarks."""
        console = cli._err()
        if not project_dir.is_dir():
            raise cli._bad(f"{project_dir} is not a directory")
        if not 1 <= shards <= 64:
            raise cli._bad("--shards must be between 1 and 64")
        if docker and not distributed:
            raise cli._bad("--docker needs --distributed (the docker pool's workers run the Python swarm)")
        settings = cli._settings(home)
        try:
            from noa_core.swarm.summary import validate_languages

            langs = validate_languages(_pools(languages)) if languages else None
            connect(home, console)
            from flows.swarm import run_swarm

            with console.status(f"swarm: {project_dir}"):
                summary = run_swarm(project_dir=str(project_dir.resolve()), languages=langs, shards=shards,
                                    home=str(settings.home), mode="distributed" if distributed else "embedded",
                                    reuse=not fresh, pool_type="docker" if docker else "process")
        except NoaError as exc:
            raise cli._fail(exc) from None
        if as_json:
            typer.echo(summary.model_dump_json(indent=2))
        else:
            _print_summary(summary, Console())
        raise typer.Exit(1 if summary["status"] == "failed" else 0)


def _docker_pool(settings: object, console: Console, *, deploy: bool) -> tuple[bool, str | None]:
    """The python-swarm-docker pool, its deployment and the swarm image they run: (created, deployment id)."""
    import os

    from deployments.swarm_docker import deploy_docker_swarm, ensure_docker_pool
    from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR
    from noa_core.swarm.docker_image import ensure_swarm_image

    cache = Path(os.environ.get("NOA_DOCKER_CACHE") or DEFAULT_CACHE_DIR)
    with console.status("swarm image"):
        image = ensure_swarm_image(cache_dir=cache, log=lambda m: console.print(m, markup=False, highlight=False))
    console.print(f"swarm image {image.tag}: {image.how}")
    if image.how == "built":
        from noa_core.swarm.image_prune import prune_after_build

        console.print(prune_after_build(), markup=False, highlight=False)
    created = ensure_docker_pool()
    dep = deploy_docker_swarm(image.tag, settings.layout().root,  # type: ignore[attr-defined]
                              database_url=settings.database_url) if deploy else None  # type: ignore[attr-defined]
    return created, dep


def _print_summary(summary: dict, console: Console) -> None:
    table = Table(title=f"swarm {summary['project']}: {summary['status']} ({summary['mode']})")
    for col in ("swarm", "check", "status", "result", "s", "reused"):
        table.add_column(col)
    for lang, rep in summary["swarms"].items():
        for r in rep["results"]:
            c = r.get("counts") or {}
            what = c.get("summary_line") or (f"{r['findings']} findings" if r.get("findings") else "")
            if r.get("reason"):
                what = f"{what} - {r['reason']}" if what else r["reason"]
            table.add_row(lang, r["check"], r["status"], what[:100], f"{r.get('seconds', 0):.1f}",
                          "yes" if r.get("cached") else "")
    console.print(table)
    if summary.get("report_path"):
        print(f"report: {summary['report_path']}", file=sys.stderr)
