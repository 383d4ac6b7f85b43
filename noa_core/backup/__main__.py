"""``python -m noa_core.backup ...``: the backup commands without the rest of ``noa``.

The same Typer commands as ``noa workspace backup|restore|verify|forget|snapshots``;
used by the asynchronous backup trigger and the benchmark, so that they do not depend on
which other command groups are registered in ``noa``.
"""

import os

import typer

from noa_core.cli.backup_cmd import register

app = typer.Typer(add_completion=False, no_args_is_help=True, help="NOA workspace backups.")
register(app)

if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()
