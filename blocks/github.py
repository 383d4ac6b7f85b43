"""The ``noa-github`` block: where NOA reports pipeline results on GitHub.

``base_url`` is ``https://api.github.com`` or a GitHub Enterprise Server's
``https://HOST/api/v3``; the token is a ``SecretStr`` (never in parameters, logs or
reports). Without a token in the block, :meth:`NoaGitHub.resolve_token` falls back to a
Prefect ``Secret`` block named by ``token_secret_block`` and then to ``NOA_GITHUB_TOKEN``.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from noa_core.integrations.github_api import DEFAULT_BASE_URL, GitHubClient, GitHubTarget, token_from_env


def token_from_secret_block(name: str) -> str | None:
    """The value of the Prefect ``Secret`` block ``name``, or None when there is no such block."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name, _sync=True).get()  # type: ignore[call-arg]
    except ValueError:  # no block of that name
        return None
    return str(value).strip() or None


class NoaGitHub(Block):
    """A GitHub (or GitHub Enterprise) repository NOA reports to."""

    _block_type_name = "NOA GitHub"
    _block_type_slug = "noa-github"
    _description = "Where NOA ARK OS posts commit statuses, check runs and pull request comments."

    base_url: str = Field(DEFAULT_BASE_URL, description="https://api.github.com or https://HOST/api/v3")
    owner: str = Field(..., description="repository owner (user or organisation)")
    repo: str = Field(..., description="repository name")
    token: SecretStr | None = Field(None, description="token with statuses:write (and checks:write for a GitHub App)")
    token_secret_block: str | None = Field(None, description="name of a Prefect Secret block holding the token")
    context: str = Field("noa/pipeline", description="commit status context")

    def resolve_token(self) -> str | None:
        if self.token is not None and self.token.get_secret_value().strip():
            return self.token.get_secret_value().strip()
        if self.token_secret_block:
            found = token_from_secret_block(self.token_secret_block)
            if found:
                return found
        return token_from_env()

    def target(self, sha: str, pr_number: int | None = None) -> GitHubTarget:
        return GitHubTarget(self.owner, self.repo, sha, pr_number)

    def client(self, **options: Any) -> GitHubClient:
        token = self.resolve_token()
        return GitHubClient(token or "", base_url=self.base_url, **options)
