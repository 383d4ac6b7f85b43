"""``noa webhook serve``: receive GitHub webhooks and turn them into ``cicd_pipeline`` runs.

::

    noa webhook serve [--host 127.0.0.1] [--port 8787] [--env staging]
                      [--source OWNER/REPO=SOURCE ...] [--repo OWNER/REPO ...] [--no-runner]
                      [--deployment cicd_pipeline/NAME]

It connects to the Prefect server (``PREFECT_API_URL`` or NOA_HOME's embedded one),
registers the deployment ``cicd_pipeline/cicd-<hash of NOA_HOME>`` and, unless
``--no-runner``, executes its runs in this process (a Runner thread); then it serves
``POST /webhooks/github`` with uvicorn until interrupted. The secret comes from
``NOA_GITHUB_WEBHOOK_SECRET`` or the Prefect Secret block ``noa-github-webhook-secret``
(``--secret-block``); it is never printed. In GitHub: payload URL
``http(s)://<host>/webhooks/github``, content type ``application/json``, events
"push" and "pull requests".
"""

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``noa webhook ...`` to the ``noa`` application."""
    from noa_core.cli import options as cli
    from noa_core.errors import NoaError

    webhook_app = typer.Typer(no_args_is_help=True, help="Receive GitHub webhooks (push, pull_request).")
    app.add_typer(webhook_app, name="webhook")

    @webhook_app.command("serve")
    def serve(
        host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8787,
        env: Annotated[str, typer.Option("--env", help="where the pipeline deploys: staging|production")] = "staging",
        source: Annotated[list[str] | None, typer.Option(
            "--source", help="OWNER/REPO=SOURCE: build this source (a path or URL) for that repository")] = None,
        repo: Annotated[list[str] | None, typer.Option(
            "--repo", help="accept only these repositories (repeatable)")] = None,
        secret_block: Annotated[str | None, typer.Option(
            "--secret-block", help="Prefect Secret block holding the webhook secret")] = None,
        max_body: Annotated[int, typer.Option("--max-body-bytes", help="larger bodies get 413")] = 25 * 1024 * 1024,
        no_runner: Annotated[bool, typer.Option(
            "--no-runner", help="only register the deployment; a worker or `python -m deployments.cicd` runs it")]
        = False,
        deployment: Annotated[str | None, typer.Option(
            "--deployment", help="start runs of this existing deployment (e.g. cicd_pipeline/cicd-pipeline from "
                                 "prefect.yaml, run by a noa-process worker) instead of serving one here")] = None,
        home: cli.HomeOption = None,
    ) -> None:
        """Serve POST /webhooks/github: signed push / pull_request deliveries start cicd_pipeline runs."""
        console = cli._err()
        if env not in ("staging", "production"):
            raise cli._bad("--env must be staging or production")
        if not 0 < port < 65536:
            raise cli._bad("--port must be between 1 and 65535")
        if max_body < 1024:
            raise cli._bad("--max-body-bytes must be at least 1024")
        if deployment is not None and deployment.count("/") != 1:
            raise cli._bad("--deployment takes FLOW/DEPLOYMENT, e.g. cicd_pipeline/cicd-pipeline")
        sources: dict[str, str] = {}
        for item in source or []:
            name, sep, value = item.partition("=")
            if not sep or "/" not in name or not value:
                raise cli._bad(f"--source takes OWNER/REPO=SOURCE, got {item!r}")
            sources[name] = str(Path(value).resolve()) if Path(value).exists() else value
        settings = cli._settings(home)
        runner = None
        try:
            from noa_core.cli.connect import connect_prefect

            server = connect_prefect(settings, console)
            import uvicorn
            from fastapi import FastAPI

            from deployments.cicd import CicdRunner
            from noa_core.server.github_webhook import (
                DeploymentStarter,
                WebhookConfig,
                github_webhook_router,
                load_webhook_secret,
            )
            from noa_core.webhooks.deliveries import DeliveryStore

            secret = load_webhook_secret(secret_block)
            if deployment:
                reference = deployment
            else:
                runner = CicdRunner(settings.home, env=env, execute=not no_runner).start()
                reference = runner.reference
            config = WebhookConfig(secret=secret, env=env, home=str(settings.home.resolve()), max_body_bytes=max_body,
                                   sources=sources, repos=frozenset(repo) if repo else None)
            web = FastAPI(title="NOA ARK OS webhooks", docs_url=None, redoc_url=None, openapi_url=None)
            web.include_router(github_webhook_router(config, DeploymentStarter(reference),
                                                     DeliveryStore.for_settings(settings)))
            console.print(f"POST http://{host}:{port}/webhooks/github -> deployment {reference} "
                          f"(Prefect UI {server.ui_url})")
            typer.echo(json.dumps({"url": f"http://{host}:{port}/webhooks/github", "deployment": reference}))
            uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
        except NoaError as exc:
            raise cli._fail(exc) from None
        finally:
            if runner is not None:
                runner.stop()
