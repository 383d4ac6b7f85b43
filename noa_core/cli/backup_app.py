"""``python -m noa_core.cli.backup_app ...``: the backup commands without the rest of ``noa``.

The same Typer commands as ``noa workspace backup|restore|verify|forget|snapshots``; used by
the benchmark and the tests, so that they do not depend on which other command groups are
registered in ``noa`` (and do not pay for importing them). It lives with the other command
modules: the backup domain package (:mod:`noa_core.backup`) knows nothing of the CLI.
"""

import os

import typer

from noa_core.cli.backup_cmd import register

app = typer.Typer(add_completion=False, no_args_is_help=True, help="NOA workspace backups.")
register(app)

if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()
