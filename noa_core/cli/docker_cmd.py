"""``noa docker``: NOA's Docker base images and deploy containers, registered by :func:`register`.

::

    noa docker images build [--name runtime|swarm] [--rebuild] [--cache-dir DIR] [--json]
    noa docker images list [--json]
    noa docker images prune [--older-than MINUTES] [--dry-run] [--json]
    noa docker containers [--all-homes] [--json]

``images build`` makes the base image without a registry (debootstrap, cached tarball,
``docker import``; minutes the first time, reused after) - see
:mod:`noa_core.deploy.docker_images`. The engine is the one ``DOCKER_HOST`` (or the
default socket) names; start it with ``scripts/dockerd.sh start``. Exit 0 done, 1 no
engine or the build failed, 2 bad input.
"""

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def _cache_dir(given: Path | None) -> Path:
    from noa_core.deploy.docker_images import DEFAULT_CACHE_DIR

    if given is not None:
        return given.resolve()
    env = os.environ.get("NOA_DOCKER_CACHE")
    return Path(env).resolve() if env else DEFAULT_CACHE_DIR


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB"


def register(app: typer.Typer) -> None:
    """Add ``noa docker ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli

    docker_app = typer.Typer(no_args_is_help=True, help="NOA's Docker base images and deploy containers.")
    images_app = typer.Typer(no_args_is_help=True, help="Base images built without a registry.")
    docker_app.add_typer(images_app, name="images")
    app.add_typer(docker_app, name="docker")

    @images_app.command("build")
    def images_build(
        name: Annotated[str, typer.Option("--name", help="which image: runtime (base), or swarm (Python + NOA's "
                                                        "runtime, for the python-swarm-docker pool)")] = "runtime",
        rebuild: Annotated[bool, typer.Option("--rebuild", help="run debootstrap again even if cached")] = False,
        cache_dir: Annotated[Path | None, typer.Option(
            "--cache-dir", help="root file system tarballs and wheels (env NOA_DOCKER_CACHE; "
                                "default /var/cache/noa/docker)")] = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Build (or reuse) an image: the base (debootstrap minbase + Debian's python3, imported), or the
        swarm image on it (NOA's runtime from a local wheelhouse + NOA's source); hash-tagged."""
        from noa_core.deploy.docker_images import SPECS, ensure_base_image
        from noa_core.errors import NoaError

        spec = SPECS.get(name)
        if spec is None and name != "swarm":
            raise cli._bad(f"--name must be one of {', '.join([*SPECS, 'swarm'])} (got {name!r})")
        console = cli._err()
        if spec is None:
            from noa_core.swarm.docker_image import ensure_swarm_image

            try:
                swarm = ensure_swarm_image(cache_dir=_cache_dir(cache_dir), rebuild=rebuild,
                                           log=lambda m: console.print(m, markup=False, highlight=False))
            except NoaError as exc:
                cli._error_line(exc.one_line())
                raise typer.Exit(1) from None
            if swarm.how == "built":
                from noa_core.swarm.image_prune import prune_after_build

                console.print(prune_after_build(), markup=False, highlight=False)
            if as_json:
                typer.echo(json.dumps(swarm.as_dict(), indent=2))
            else:
                typer.echo(f"{swarm.tag}: {swarm.how} in {swarm.seconds:.1f} s ({_mib(swarm.size_bytes)}, "
                           f"id {swarm.image_id[:19]})")
            return
        try:
            with console.status(f"base image {spec.tag}"):
                img = ensure_base_image(spec, cache_dir=_cache_dir(cache_dir), rebuild=rebuild,
                                        log=lambda m: console.print(m, markup=False, highlight=False))
        except NoaError as exc:
            cli._error_line(exc.one_line())
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(img.as_dict(), indent=2))
        else:
            typer.echo(f"{img.tag}: {img.how} in {img.seconds:.1f} s ({_mib(img.size_bytes)}, id {img.image_id[:19]})")

    @images_app.command("list")
    def images_list(as_json: cli.JsonOption = False) -> None:
        """NOA's base images in the engine, and whether each is the current recipe's."""
        from noa_core.deploy.docker_images import SPECS, base_images
        from noa_core.errors import NoaError

        try:
            found = base_images()
        except NoaError as exc:
            cli._error_line(exc.one_line())
            raise typer.Exit(1) from None
        current = {s.tag for s in SPECS.values()}
        rows: list[dict[str, Any]] = [{**b.as_dict(), "current": b.tag in current} for b in found]
        for spec in SPECS.values():
            if spec.tag not in {r["tag"] for r in rows}:
                rows.append({"name": spec.name, "tag": spec.tag, "current": True, "how": "missing"})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        t = Table(title="NOA base images")
        for col in ("name", "tag", "size", "created", "state"):
            t.add_column(col)
        for r in rows:
            state = "missing (noa docker images build)" if r.get("how") == "missing" else (
                "current" if r["current"] else "older recipe")
            t.add_row(r["name"], r["tag"], _mib(int(r.get("size_bytes") or 0)) if r.get("size_bytes") else "",
                      str(r.get("created", "")), state)
        Console().print(t)

    @images_app.command("prune")
    def images_prune(
        older_than: Annotated[float, typer.Option("--older-than", help="only tags built more than MINUTES ago")] = 0.0,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go, remove nothing")] = False,
        as_json: cli.JsonOption = False,
    ) -> None:
        """Remove old noa/swarm and noa/swarm-deps tags: all but this checkout's current ones, the deps
        image under a kept swarm image, and any image a container (running or stopped) uses."""
        from docker.errors import DockerException

        from noa_core.errors import NoaError
        from noa_core.swarm.image_prune import prune_old_swarm_images

        if older_than < 0:
            raise cli._bad(f"--older-than must be 0 or more minutes (got {older_than:g})")
        try:
            done = prune_old_swarm_images(min_age_s=older_than * 60, dry_run=dry_run)
        except (NoaError, DockerException) as exc:
            cli._error_line(exc.one_line() if isinstance(exc, NoaError) else f"{type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps([p.as_dict() for p in done], indent=2))
            return
        for p in done:
            typer.echo(f"{p.action}\t{p.tag}" + (f"\t({p.reason})" if p.reason else ""))
        if not done:
            typer.echo("no swarm images")

    @docker_app.command("containers")
    def containers(
        all_homes: Annotated[bool, typer.Option("--all-homes", help="every NOA deploy container, any NOA_HOME")] = False,
        home: cli.HomeOption = None,
        as_json: cli.JsonOption = False,
    ) -> None:
        """NOA's deploy containers (this NOA_HOME's unless --all-homes): app, release, env, colour, state."""
        from noa_core.deploy.docker_names import home_label
        from noa_core.deploy.docker_target import DockerTarget

        target = DockerTarget()
        avail = target.availability()
        if not avail.ok:
            cli._error_line(avail.reason)
            raise typer.Exit(1)
        labels = ["noa.target=docker"]
        if not all_homes:
            labels.append(f"noa.home={home_label(cli._settings(home).home)}")
        rows = [{"name": c.name, "status": c.status, **{k.removeprefix("noa."): v for k, v in (c.labels or {}).items()
                                                        if k in ("noa.app", "noa.release", "noa.env", "noa.colour")}}
                for c in target.client.containers.list(all=True, filters={"label": labels})]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        t = Table(title="NOA deploy containers")
        for col in ("name", "app", "env", "colour", "release", "status"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["name"], r.get("app", ""), r.get("env", ""), r.get("colour", ""), r.get("release", ""),
                      r["status"])
        Console().print(t)
