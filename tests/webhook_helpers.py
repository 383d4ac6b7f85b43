"""GitHub-shaped webhook deliveries for the webhook tests (bodies as GitHub sends them)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from noa_core.webhooks.github import sign

SECRET = "webhook-secret-for-tests"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
PR_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def push_payload(sha: str = SHA, repo: str = "octo-org/hello-service", ref: str = "refs/heads/main") -> dict[str, Any]:
    """The fields of GitHub's documented ``push`` payload NOA reads (and a few it does not)."""
    return {
        "ref": ref, "before": "0" * 39 + "1", "after": sha, "created": False, "deleted": False, "forced": False,
        "compare": f"https://github.com/{repo}/compare/abc...def",
        "commits": [{"id": sha, "message": "Fix the greeting", "author": {"name": "Mona", "email": "m@example.com"}}],
        "head_commit": {"id": sha, "message": "Fix the greeting"},
        "repository": {"id": 1296269, "name": repo.split("/")[1], "full_name": repo, "private": False,
                       "clone_url": f"https://github.com/{repo}.git", "default_branch": "main"},
        "pusher": {"name": "mona", "email": "m@example.com"}, "sender": {"login": "mona", "id": 1},
    }


def pr_payload(action: str = "opened", number: int = 7, sha: str = PR_SHA,
               repo: str = "octo-org/hello-service") -> dict[str, Any]:
    return {
        "action": action, "number": number,
        "pull_request": {"number": number, "state": "open", "title": "Greet louder",
                         "head": {"ref": "greet-louder", "sha": sha}, "base": {"ref": "main", "sha": SHA}},
        "repository": {"full_name": repo, "clone_url": f"https://github.com/{repo}.git"},
        "sender": {"login": "mona"},
    }


def delivery(event: str, payload: dict[str, Any] | bytes, *, secret: str = SECRET, delivery_id: str | None = None,
             signature: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc123",
               "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
               "X-Hub-Signature-256": signature if signature is not None else sign(body, secret)}
    return body, headers
