"""``noa workspace``: the workspace registry, SOT archive, versions and dependency graph.

::

    noa workspace scan [PATH] [--watch] [--json] [--no-record] [--flow]
    noa workspace graph [PATH] [--out DIR] [--image svg|png] [--json] [--flow]
    noa workspace status [--path FILE] [--json]

``scan`` and ``graph`` run in this process and never import Prefect (an unchanged
rescan costs a walk and one lstat per file); ``--flow`` runs them as the Prefect flow
``workspace_maintenance`` instead (run history, a markdown artifact of the graph).
The backup helper adds ``backup/restore/verify/forget/cleanup`` to :data:`workspace_app`
with its own ``register`` function.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

workspace_app = typer.Typer(no_args_is_help=True,
                            help="Workspace: file registry, SOT archive, versions, dependency graph, backups.")

PathArg = Annotated[Optional[Path], typer.Argument(help="the tree (default: the current directory)")]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _print_scan(doc: dict[str, Any]) -> None:
    line = (f"{doc['root']}: {doc['files']} files, {_human(doc['bytes'])}; "
            f"+{doc['added']} ~{doc['modified']} -{doc['deleted']}, {doc['unchanged']} unchanged (not read), "
            f"{doc['hashed_files']} hashed")
    if doc.get("hash_mib_per_s"):
        line += f" at {doc['hash_mib_per_s']} MiB/s"
    typer.echo(line)
    typer.echo(f"SOT: {doc['duplicate_files']} duplicate files ({_human(doc['duplicate_bytes'])}) point at their "
               f"source; archive {doc['archived_blobs']} blobs, {_human(doc['archive_bytes'])} zstd; "
               f"saved {_human(doc['saved_bytes'])}")
    if doc.get("skipped"):
        typer.echo(f"skipped {len(doc['skipped'])} (symlinks, special or unreadable files)", err=True)


@workspace_app.command("scan")
def scan_cmd(
    path: PathArg = None,
    watch: Annotated[bool, typer.Option("--watch", help="keep watching; apply the same flow to each change")] = False,
    no_record: Annotated[bool, typer.Option("--no-record", help="do not add a CL tree entry")] = False,
    flow: Annotated[bool, typer.Option("--flow", help="run as the Prefect flow workspace_maintenance")] = False,
    home: Annotated[Optional[Path], typer.Option("--home", envvar="NOA_HOME", help="NOA_HOME (default ./.noa)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """Register every file of PATH: stat-checked, BLAKE3-hashed, de-duplicated, versioned."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    root = path or Path.cwd()
    if not root.is_dir():
        raise cli._bad(f"{root}: not a directory")
    settings = cli._settings(home)
    if flow:
        _run_flow(settings, root, graph=False, as_json=as_json)
        return
    from noa_core.workspace.scan import scan

    try:
        report = scan(settings, root, record=not no_record)
    except NoaError as exc:
        raise cli._fail(exc) from None
    if as_json and not watch:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    if not as_json:
        _print_scan(report.as_dict())
    if watch:
        from noa_core.workspace.watch import watch_tree

        def show(rep: Any) -> None:
            doc = rep.as_dict()
            if as_json:
                typer.echo(json.dumps(doc))  # one JSON document per change batch (JSON lines)
            else:
                typer.echo(f"change: +{doc['added']} ~{doc['modified']} -{doc['deleted']}; "
                           f"{doc['files']} files; SOT saved {_human(doc['saved_bytes'])}")

        try:
            watch_tree(settings, root, on_report=show, record=not no_record)
        except KeyboardInterrupt:
            pass
        except NoaError as exc:
            raise cli._fail(exc) from None


@workspace_app.command("graph")
def graph_cmd(
    path: PathArg = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output directory "
                                                "(default NOA_HOME/reports/workspace-graph)")] = None,
    image: Annotated[str, typer.Option("--image", help="svg or png")] = "svg",
    flow: Annotated[bool, typer.Option("--flow", help="run as the Prefect flow workspace_maintenance")] = False,
    home: Annotated[Optional[Path], typer.Option("--home", envvar="NOA_HOME", help="NOA_HOME (default ./.noa)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """The dependency graph of every project under PATH: GraphML, JSON and a rendered image."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    root = (path or Path.cwd())
    if not root.is_dir():
        raise cli._bad(f"{root}: not a directory")
    if image not in ("svg", "png"):
        raise cli._bad("--image must be svg or png")
    settings = cli._settings(home)
    if flow:
        _run_flow(settings, root, graph=True, as_json=as_json, out=out, image=image)
        return
    from noa_core.workspace.deps import build_graph, graph_json, write_graph

    target = out or settings.layout().reports / "workspace-graph"
    try:
        graph = build_graph(root.resolve(), skip=[str(settings.layout().root)])
        files = write_graph(graph, target, image=image)
    except NoaError as exc:
        raise cli._fail(exc) from None
    doc = {k: v for k, v in graph_json(graph).items() if k not in ("nodes", "links")}
    doc["files"] = files
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"{doc['projects']} projects, {doc['externals']} external dependencies, {doc['edges']} edges "
               f"({doc['internal_edges']} inside the workspace)")
    for kind in ("graphml", "json", "image"):
        typer.echo(files[kind])


@workspace_app.command("status")
def status_cmd(
    file: Annotated[Optional[Path], typer.Option("--path", help="version history of this file")] = None,
    home: Annotated[Optional[Path], typer.Option("--home", envvar="NOA_HOME", help="NOA_HOME (default ./.noa)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """Scanned roots (files, bytes, duplicates, bytes saved), or one file's version history."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError
    from noa_core.workspace.status import file_history, roots_status

    settings = cli._settings(home)
    try:
        if file is not None:
            history = file_history(settings, file)
            if as_json:
                typer.echo(json.dumps(history, indent=2))
                return
            if not history["versions"]:
                typer.echo(f"{file}: no versions registered (scan its tree first)")
                raise typer.Exit(1)
            for v in history["versions"]:
                typer.echo(f"v{v['version']}\t{v['change']}\t{v['seen'][:19]}\t{v['size']}\t{(v['hash'] or '-')[:16]}")
            return
        roots = roots_status(settings)
    except NoaError as exc:
        raise cli._fail(exc) from None
    if as_json:
        typer.echo(json.dumps(roots, indent=2))
        return
    if not roots:
        typer.echo("no tree scanned yet: noa workspace scan PATH")
        return
    for r in roots:
        typer.echo(f"{r['root']}\t{r['files']} files\t{_human(r['bytes'])}\tlast scan {(r['last_scan'] or '-')[:19]}\t"
                   f"{r['duplicate_files']} duplicates, saved {_human(r['saved_bytes'])}")


def _run_flow(settings: Any, root: Path, *, graph: bool, as_json: bool, out: Optional[Path] = None,
              image: str = "svg") -> None:
    from noa_core.cli import options as cli
    from noa_core.cli.connect import connect_prefect
    from noa_core.errors import NoaError

    console = cli._err()
    try:
        connect_prefect(settings, console)
        from flows.runtime import run_in_process
        from flows.workspace import workspace_maintenance

        with console.status(f"workspace_maintenance: {root}"):
            result = run_in_process(workspace_maintenance, root=str(root.resolve()), home=str(settings.home),
                                    graph=graph, out=str(out) if out else None, image=image)
    except NoaError as exc:
        raise cli._fail(exc) from None
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _print_scan(result["scan"])
        if result.get("graph"):
            for kind in ("graphml", "json", "image"):
                typer.echo(result["graph"]["files"][kind])
        if result.get("flow_run_id"):
            print(f"flow run {result['flow_run_id']}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add ``noa workspace ...`` to the ``noa`` application."""
    app.add_typer(workspace_app, name="workspace")
