"""GitHub webhooks: the ``X-Hub-Signature-256`` check and ``push`` / ``pull_request`` parsing.

GitHub signs each delivery with ``sha256=<hex HMAC-SHA256 of the raw body, keyed with
the webhook secret>``. :func:`verify_signature` recomputes it over the exact bytes
received and compares with :func:`hmac.compare_digest` (constant time). Nothing here
logs, formats or returns the secret.

:func:`parse_event` turns a verified delivery into a :class:`GitHubTrigger` (what a
pipeline run needs: repository, ref, commit, PR number) or an :class:`IgnoredEvent`
(``ping``, a branch deletion, a ``pull_request`` action that changes no code, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noa_core.errors import BadInput, NoaError

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SIGNATURE_PREFIX = "sha256="
#: pull_request actions that put new code on the PR's head
PR_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1 or SHA-256 object names
_NULL_SHA = "0" * 40
_DELIVERY = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class WebhookError(NoaError):
    """Base class of the webhook port's errors."""


class BadSignature(WebhookError):
    """The signature header is missing, malformed or does not match the body."""


class BadPayload(BadInput, WebhookError):
    """A signed delivery whose headers or JSON body are not what GitHub sends."""


def sign(body: bytes, secret: str | bytes) -> str:
    """``sha256=<hex>``: the ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str | bytes) -> None:
    """Raise :class:`BadSignature` unless ``header`` is the HMAC-SHA256 of ``body``.

    The comparison is constant-time over the whole hex digest; an empty secret is
    refused (a webhook without a secret would accept anybody's payload).
    """
    if not secret:
        raise BadSignature("no webhook secret is configured")
    if not header:
        raise BadSignature(f"missing {SIGNATURE_HEADER} header")
    expected = sign(body, secret).encode("ascii")
    try:
        given = header.strip().encode("ascii")
    except UnicodeEncodeError:
        raise BadSignature(f"malformed {SIGNATURE_HEADER} header") from None
    if not hmac.compare_digest(expected, given):
        raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")


@dataclass(frozen=True)
class GitHubTrigger:
    """A code change that should run the CI/CD pipeline."""

    delivery_id: str
    event: str                 # "push" | "pull_request"
    repo: str                  # owner/name
    clone_url: str | None      # https URL of the repository
    ref: str                   # refs/heads/main, refs/pull/7/head, refs/tags/v1
    commit: str                # the commit to build (push: after; PR: head.sha)
    pr_number: int | None = None
    action: str | None = None  # pull_request action
    sender: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "event": self.event, "repo": self.repo,
                "clone_url": self.clone_url, "ref": self.ref, "commit": self.commit,
                "pr_number": self.pr_number, "action": self.action, "sender": self.sender}


@dataclass(frozen=True)
class IgnoredEvent:
    """A verified delivery that starts nothing, and why."""

    delivery_id: str
    event: str
    reason: str


def _str(data: Mapping[str, Any], *keys: str) -> str | None:
    cur: Any = data
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur if isinstance(cur, str) else None


def _need(value: str | None, what: str) -> str:
    if not value:
        raise BadPayload(f"webhook payload has no {what}")
    return value


def _commit(value: str | None, what: str) -> str:
    value = _need(value, what).lower()
    if not _SHA.match(value):
        raise BadPayload(f"webhook payload {what} is not a commit id")
    return value


def check_delivery_id(delivery_id: str | None) -> str:
    if not delivery_id or not _DELIVERY.match(delivery_id):
        raise BadPayload(f"missing or malformed {DELIVERY_HEADER} header")
    return delivery_id


def parse_event(event: str | None, delivery_id: str | None, body: bytes) -> GitHubTrigger | IgnoredEvent:
    """A verified delivery as a trigger, or as an ignored event (with the reason)."""
    delivery = check_delivery_id(delivery_id)
    if not event or not re.match(r"^[a-z_]{1,64}$", event):
        raise BadPayload(f"missing or malformed {EVENT_HEADER} header")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("webhook body is not JSON (set the content type to application/json)") from None
    if not isinstance(data, dict):
        raise BadPayload("webhook body is not a JSON object")
    if event == "ping":
        return IgnoredEvent(delivery, event, "ping: the webhook is set up")
    if event not in ("push", "pull_request"):
        return IgnoredEvent(delivery, event, f"event {event!r} starts no pipeline")
    repo = _need(_str(data, "repository", "full_name"), "repository.full_name")
    clone_url = _str(data, "repository", "clone_url")
    sender = _str(data, "sender", "login")
    if event == "push":
        ref = _need(_str(data, "ref"), "ref")
        after = _str(data, "after")
        if data.get("deleted") is True or after == _NULL_SHA:
            return IgnoredEvent(delivery, event, f"{ref} was deleted")
        return GitHubTrigger(delivery, event, repo, clone_url, ref, _commit(after, "after"), sender=sender)
    action = _need(_str(data, "action"), "action")
    number = data.get("number", (data.get("pull_request") or {}).get("number"))
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise BadPayload("webhook payload has no pull request number")
    if action not in PR_ACTIONS:
        return IgnoredEvent(delivery, event, f"pull_request action {action!r} changes no code")
    head_sha = _commit(_str(data, "pull_request", "head", "sha"), "pull_request.head.sha")
    return GitHubTrigger(delivery, event, repo, clone_url, f"refs/pull/{number}/head", head_sha,
                         pr_number=number, action=action, sender=sender)


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "PR_ACTIONS",
    "SIGNATURE_HEADER",
    "BadPayload",
    "BadSignature",
    "GitHubTrigger",
    "IgnoredEvent",
    "WebhookError",
    "check_delivery_id",
    "parse_event",
    "sign",
    "verify_signature",
]
