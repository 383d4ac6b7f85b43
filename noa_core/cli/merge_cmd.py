"""``noa merge`` and ``noa sandbox list|reset``: registered on the main app by :func:`register`.

stdout carries the result only (one JSON document with ``--json``); progress and errors go
to stderr. ``noa merge`` exits 0 when it merged every drop (or had nothing to merge), 1 when
it ran and refused something (conflicts, failed validation, rolled back, or a partial merge:
some drops merged into D, others held in their sandbox), 2 on bad input (an unknown
sandbox, or D). ``--json`` lists the drops under ``drops.merged`` and ``drops.held``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from noa_core.cli.options import (
    HomeOption,
    JsonOption,
    _bad,
    _error_line,
    _fail,
    _settings,
)
from noa_core.config import NoaSettings
from noa_core.errors import BadInput, NoaError
from noa_core.results import MergeReport


def _print_merge(report: dict[str, Any], console: Console) -> None:
    summary = Table(title=f"sandbox merge {report['run_id']}", show_header=False)
    before, after = report["integration_head_before"], report["integration_head_after"]
    for key, value in [
        ("outcome", report["outcome"]),
        ("requested", ", ".join(report["requested"]) or "-"),
        ("D", f"{before[:12]} -> {after[:12]}" if before != after else f"{before[:12]} (unchanged)"),
        ("culprit", ", ".join(report["culprit"]) if report.get("culprit") else "-"),
        ("change log", report["cltree"]["reason"]),
        ("report", str(report.get("report_path"))),
    ]:
        summary.add_row(key, value)
    console.print(summary)
    console.print(report["message"])
    if report["conflicts"]:
        table = Table(title="conflicts")
        for col in ("sandboxes", "path", "kind"):
            table.add_column(col)
        for c in report["conflicts"]:
            table.add_row(" x ".join(c["sandboxes"]), c["path"], c["kind"])
        console.print(table)
    if report["validation"]:
        table = Table(title="validation")
        for col in ("project", "status", "passed", "failed", "note"):
            table.add_column(col)
        for name, v in report["validation"].items():
            table.add_row(name, v["status"], str(v["passed"]), str(v["failed"]),
                          v.get("summary_line") or v.get("reason", ""))
        console.print(table)
    drops = report.get("drops") or {}
    if drops.get("merged") or drops.get("held"):
        table = Table(title="drops")
        for col in ("drop", "sandbox", "project", "result", "reason"):
            table.add_column(col)
        for d in drops.get("merged", []):
            table.add_row(d["drop_id"], d["sandbox"], d["project"], "merged", "")
        for d in drops.get("held", []):
            table.add_row(d["drop_id"], d["sandbox"], d["project"], "held", d["reason"])
        console.print(table)
    table = Table(title="sandboxes")
    for col in ("sandbox", "status", "message"):
        table.add_column(col)
    for name, v in report["per_sandbox"].items():
        table.add_row(name, v["status"], v["message"])
    console.print(table)
    if report.get("suggestion"):
        console.print(f"next: {report['suggestion']}")


def merge(
    sandboxes: Annotated[list[str] | None, typer.Argument(help="sandboxes to merge into D (default: every one "
                                                                  "of A, B, C ahead of D)")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Merge the drops of sandboxes into the integration sandbox D: conflict check, merge, validate.

    A drop that fails the tests stays held in its sandbox (with the reason); the others are merged.
    """
    from noa_core.sandbox.merge import MergeRolledBack, parse_requested

    settings = _settings(home)
    console = Console(stderr=True)
    try:
        requested, _explicit = parse_requested(sandboxes)
    except BadInput as exc:
        raise _bad(exc.one_line()) from None
    report: MergeReport | None = None
    ui_url = ""
    try:
        from noa_core.cli.connect import connect_prefect

        ui_url = connect_prefect(settings, console).ui_url
        from flows.runtime import run_in_process
        from flows.sandbox_merge import sandbox_merge

        with console.status(f"sandbox merge: {', '.join(requested)}"):
            report = run_in_process(sandbox_merge, sandboxes=list(sandboxes) if sandboxes else None,
                                    home=str(settings.home))
    except MergeRolledBack as exc:
        report = getattr(exc, "report", None)
        if report is None:
            _error_line(exc.one_line())
            raise typer.Exit(1) from None
        _error_line(exc.one_line())
    except NoaError as exc:
        raise _fail(exc) from None
    assert report is not None
    if as_json:
        typer.echo(MergeReport.model_validate(report).model_dump_json(indent=2))
    else:
        _print_merge(report, Console())
        if report.get("flow_run_id") and ui_url:
            console.print(f"Prefect UI: {ui_url.rstrip('/')}/runs/flow-run/{report['flow_run_id']}")
    raise typer.Exit(0 if report["outcome"] in ("merged", "nothing to merge") else 1)


def _sandbox_rows(settings: NoaSettings) -> dict[str, Any]:
    from noa_core.sandbox.merge import read_verdict
    from noa_core.sandbox.repository import WorkspaceRepo

    repo = WorkspaceRepo(settings.layout())
    repo.ensure()
    reports = settings.layout().reports
    rows = []
    for status in repo.status():
        name = status.sandbox.value
        drops = repo.drops(name)
        rows.append({
            "name": name, "branch": status.branch, "description": status.sandbox.description,
            "head": status.head, "ahead_of_D": status.ahead_of_D, "behind_D": status.behind_D,
            "projects": list(status.projects),
            "drops": [{"drop_id": d.drop_id, "project": d.project, "commit": d.commit} for d in drops],
            "worktree": str(repo.worktree(name)),
            "last_merge": read_verdict(reports, name),
        })
    return {"repository": str(repo.path), "sandboxes": rows}


def sandbox_list(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Each sandbox's head, the drops it holds that D lacks, its projects, and how far it is from D."""
    settings = _settings(home)
    try:
        data = _sandbox_rows(settings)
    except NoaError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"sandboxes of {data['repository']}")
    for col in ("sandbox", "head", "ahead/behind D", "drops", "projects", "last merge"):
        table.add_column(col)
    for row in data["sandboxes"]:
        drops = "-" if not row["drops"] else (f"{len(row['drops'])} in history" if row["name"] == "D"
                                              else ", ".join(d["drop_id"] for d in row["drops"]))
        last = row["last_merge"]
        table.add_row(f"{row['name']} ({row['branch']})", row["head"][:12],
                      "-" if row["name"] == "D" else f"+{row['ahead_of_D']} / -{row['behind_D']}",
                      drops, ", ".join(row["projects"]) or "-",
                      f"{last['status']}: {last['message']}" if last else "-")
    Console().print(table)


def sandbox_reset(
    sandbox: Annotated[str, typer.Argument(help="A, B or C")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Point a sandbox at D's head (its own commits leave the branch; git's reflog keeps them)."""
    from noa_core.sandbox.repository import WorkspaceRepo
    from noa_core.sandbox.sandboxes import Sandbox

    settings = _settings(home)
    try:
        sb = Sandbox.parse(sandbox)
        if sb is Sandbox.D:
            raise BadInput("D is the integration sandbox: it cannot be reset to itself")
        repo = WorkspaceRepo(settings.layout())
        repo.ensure()
        old = repo.head(sb)
        dropped = len(repo.drops(sb))
        new = repo.reset_to_d(sb)
    except NoaError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"sandbox": sb.value, "branch": sb.branch, "old_head": old, "new_head": new,
                               "drops_removed": dropped}, indent=2))
    else:
        typer.echo(f"reset {sb.value} ({sb.branch}): {old[:12]} -> {new[:12]}"
                   + (f"; {dropped} drop(s) left the branch (old head kept in the reflog)" if old != new else ""))


def register(app: typer.Typer) -> None:
    """Add ``merge`` and the ``sandbox`` group to the ``noa`` app."""
    app.command("merge")(merge)
    sandbox_app = typer.Typer(no_args_is_help=True, help="The sandboxes A-D of the workspace repository.")
    sandbox_app.command("list")(sandbox_list)
    sandbox_app.command("reset")(sandbox_reset)
    app.add_typer(sandbox_app, name="sandbox")
