"""Publish pipeline results on GitHub: commit statuses, check runs and PR comments.

REST calls (API version 2022-11-28), through httpx against a configurable base URL
(``https://api.github.com`` or GitHub Enterprise Server's ``https://HOST/api/v3``):

* ``POST /repos/{owner}/{repo}/statuses/{sha}``  state error|failure|pending|success,
  description at most 140 characters (GitHub answers 422 beyond that), context, target_url;
* ``POST /repos/{owner}/{repo}/check-runs``  name, head_sha, status queued|in_progress|completed,
  conclusion (required with completed), output {title, summary (<= 65535 chars)};
  only GitHub App tokens may create check runs: a 403 there is reported as skipped;
* ``POST /repos/{owner}/{repo}/issues/{number}/comments``  body (markdown).

Retries: 5xx, transport errors and rate limits (403/429 with ``Retry-After`` or
``x-ratelimit-remaining: 0``) wait as told (``Retry-After`` seconds, or until
``x-ratelimit-reset``), else back off exponentially, at most ``max_retries`` times.
The token is sent only in the Authorization header; it is never logged, never in an
error message and never in ``repr``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from noa_core.errors import BadInput
from noa_core.integrations.interface import ChannelOutcome, IntegrationError, ReportOutcome

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TOKEN_ENV = "NOA_GITHUB_TOKEN"

STATUS_STATES = ("error", "failure", "pending", "success")
CHECK_STATUSES = ("queued", "in_progress", "completed")  # waiting/requested/pending: GitHub Actions only
CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out")
DESCRIPTION_MAX = 140
SUMMARY_MAX = 65535
COMMENT_MAX = 65536
COMMENT_MARKER = "<!-- noa-pipeline-report -->"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_SHA = re.compile(r"^[0-9a-fA-F]{40}$|^[0-9a-fA-F]{64}$")


class GitHubError(IntegrationError):
    """GitHub refused a call (4xx after retries) or could not be reached."""


def token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``NOA_GITHUB_TOKEN`` if set and not blank."""
    value = (env if env is not None else os.environ).get(TOKEN_ENV, "").strip()
    return value or None


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class GitHubTarget:
    """The commit (and optionally the pull request) a result is reported on."""

    owner: str
    repo: str
    sha: str
    pr_number: int | None = None

    def __post_init__(self) -> None:
        for label, value in (("owner", self.owner), ("repo", self.repo)):
            if not _NAME.match(value or ""):
                raise BadInput(f"GitHub {label} {value!r} is not a valid name")
        if not _SHA.match(self.sha or ""):
            raise BadInput(f"GitHub commit sha must be 40 (or 64) hex digits, not {self.sha!r}")
        if self.pr_number is not None and self.pr_number < 1:
            raise BadInput(f"pull request number must be positive, not {self.pr_number}")

    def __str__(self) -> str:
        pr = f" (PR #{self.pr_number})" if self.pr_number else ""
        return f"{self.owner}/{self.repo}@{self.sha[:12]}{pr}"


class GitHubClient:
    """A thin, retrying REST client. Use as a context manager or call :meth:`close`."""

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 20.0,
                 max_retries: int = 4, max_wait_s: float = 60.0, user_agent: str = "noa-ark-os",
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        if not token or not token.strip():
            raise BadInput(f"no GitHub token: set {TOKEN_ENV} or the token of the noa-github block")
        base = base_url.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", base):
            raise BadInput(f"GitHub base URL must be http(s)://HOST[/api/v3], not {base_url!r}")
        self.base_url = base
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base, timeout=timeout_s, transport=transport, follow_redirects=True,  # httpx drops auth cross-host
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "Authorization": f"Bearer {token.strip()}", "User-Agent": user_agent})

    def __repr__(self) -> str:
        return f"GitHubClient(base_url={self.base_url!r}, token=***)"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the three calls ------------------------------------------------------------

    def create_status(self, owner: str, repo: str, sha: str, *, state: str, description: str | None = None,
                      context: str = "noa/pipeline", target_url: str | None = None) -> dict[str, Any]:
        if state not in STATUS_STATES:
            raise BadInput(f"commit status state must be one of {', '.join(STATUS_STATES)}, not {state!r}")
        body: dict[str, Any] = {"state": state, "context": context}
        if description:
            body["description"] = shorten(description, DESCRIPTION_MAX)
        if target_url:
            body["target_url"] = target_url
        return self._post(f"/repos/{owner}/{repo}/statuses/{sha}", body)

    def create_check_run(self, owner: str, repo: str, *, name: str, head_sha: str, status: str = "completed",
                         conclusion: str | None = None, title: str | None = None, summary: str | None = None,
                         text: str | None = None, details_url: str | None = None, external_id: str | None = None,
                         started_at: str | None = None, completed_at: str | None = None) -> dict[str, Any]:
        if status not in CHECK_STATUSES:
            raise BadInput(f"check run status must be one of {', '.join(CHECK_STATUSES)}, not {status!r}")
        if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
            raise BadInput(f"check run conclusion must be one of {', '.join(CHECK_CONCLUSIONS)}, not {conclusion!r}")
        if status == "completed" and conclusion is None:
            raise BadInput("a completed check run needs a conclusion")
        body: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        for key, value in (("conclusion", conclusion), ("details_url", details_url), ("external_id", external_id),
                           ("started_at", started_at), ("completed_at", completed_at)):
            if value is not None:
                body[key] = value
        if title is not None or summary is not None:
            output = {"title": title or name, "summary": _cut(summary or "", SUMMARY_MAX)}
            if text:
                output["text"] = _cut(text, SUMMARY_MAX)
            body["output"] = output
        return self._post(f"/repos/{owner}/{repo}/check-runs", body)

    def create_issue_comment(self, owner: str, repo: str, number: int, body: str) -> dict[str, Any]:
        if not body.strip():
            raise BadInput("a comment needs a body")
        return self._post(f"/repos/{owner}/{repo}/issues/{number}/comments", {"body": _cut(body, COMMENT_MAX)})

    # -- transport --------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = self._http.post(path, json=body)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise GitHubError(f"POST {path}: {self.base_url} unreachable: {type(exc).__name__}") from None
                wait = self._backoff(attempt)
                log.info("POST %s: %s, retry in %.1f s", path, type(exc).__name__, wait)
            else:
                log.info("POST %s -> %s", path, response.status_code)
                if response.is_success:
                    return response.json() if response.content else {}
                wait_for = self._retry_wait(response, attempt)
                if wait_for is None or attempt >= self.max_retries:
                    raise GitHubError(f"POST {path}: {response.status_code} {_github_message(response)}",
                                      status=response.status_code)
                wait = wait_for
                log.info("POST %s: %s, retry %d in %.1f s", path, response.status_code, attempt + 1, wait)
            self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait_s, 1.0 * 2 ** attempt)

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying ``response``, or None when it must not be retried."""
        code = response.status_code
        headers = response.headers
        if code in (403, 429):
            retry_after = headers.get("retry-after")
            if retry_after is not None:
                try:
                    wait = max(0.0, float(retry_after))
                except ValueError:
                    wait = self._backoff(attempt)
            elif headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
                wait = max(0.0, int(headers["x-ratelimit-reset"]) - time.time()) + 1.0
            elif code == 429 or "rate limit" in _github_message(response).lower():
                wait = 60.0 if code == 403 else self._backoff(attempt)  # GitHub: wait at least a minute
            else:
                return None  # a real permission refusal
            if wait > self.max_wait_s:
                raise GitHubError(f"rate limited by GitHub for {wait:.0f} s (more than {self.max_wait_s:.0f} s)",
                                  status=code)
            return wait
        if code >= 500:
            return self._backoff(attempt)
        return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + "\n\n… (cut by NOA: too long for GitHub)"


def _github_message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return shorten(response.text, 200)
    if not isinstance(doc, dict):
        return shorten(str(doc), 200)
    message = str(doc.get("message", ""))
    errors = doc.get("errors")
    if isinstance(errors, list) and errors:
        parts = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
        message += " (" + "; ".join(parts) + ")"
    return shorten(message, 300)


# -- pipeline result -> what GitHub shows ----------------------------------------------

_STAGE_ICON = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


def _stages(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    stages = result.get("stages") or []
    return [s for s in stages if isinstance(s, Mapping)]


def verdict_state(result: Mapping[str, Any]) -> str:
    """The commit status state: passed -> success, failed -> failure, running/pending -> pending, else error."""
    verdict = str(result.get("verdict", "")).lower()
    return {"passed": "success", "success": "success", "failed": "failure", "failure": "failure",
            "running": "pending", "pending": "pending"}.get(verdict, "error")


def verdict_conclusion(result: Mapping[str, Any]) -> str:
    return {"success": "success", "failure": "failure", "error": "failure", "pending": "neutral"}[verdict_state(result)]


def _counts(result: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stage in _stages(result):
        status = str(stage.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    return counts


def status_description(result: Mapping[str, Any]) -> str:
    """At most 140 characters: verdict, stage counts, the first failed stage."""
    counts = _counts(result)
    verdict = str(result.get("verdict", "unknown"))
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    failed = [str(s.get("name")) for s in _stages(result) if s.get("status") == "failed"]
    text = f"NOA pipeline {verdict}: " + (", ".join(parts) or "no stages")
    if failed:
        text += f"; failed at {failed[0]}"
    return shorten(text, DESCRIPTION_MAX)


def _details_text(details: Any) -> str:
    if details is None or details == "" or details == {}:
        return ""
    if isinstance(details, str):
        return details
    if isinstance(details, Mapping):
        for key in ("reason", "message", "summary"):
            if isinstance(details.get(key), str) and details[key]:
                return str(details[key])
        return ", ".join(f"{k}: {v}" for k, v in list(details.items())[:4] if not isinstance(v, (dict, list)))
    return str(details)


def _cell(text: str) -> str:
    return shorten(text, 160).replace("|", "\\|")


def markdown_report(result: Mapping[str, Any], *, title: str = "NOA pipeline", details_url: str | None = None) -> str:
    """A markdown table of the stages, for the check run summary and the PR comment."""
    verdict = str(result.get("verdict", "unknown"))
    icon = {"success": "✅", "failure": "❌", "pending": "⏳"}.get(verdict_state(result), "⚠️")
    lines = [f"### {icon} {title}: **{verdict}**", ""]
    stages = _stages(result)
    if stages:
        lines += ["| stage | status | time | details |", "|---|---|---:|---|"]
        for s in stages:
            status = str(s.get("status", "unknown"))
            seconds = s.get("duration_s")
            when = f"{float(seconds):.1f} s" if isinstance(seconds, (int, float)) else "-"
            lines.append(f"| {_cell(str(s.get('name', '?')))} | {_STAGE_ICON.get(status, '')} {status} | {when} | "
                         f"{_cell(_details_text(s.get('details'))) or '-'} |")
    else:
        lines.append("_no stages ran_")
    extra = []
    for key in ("project", "source", "stopped_by", "deployed"):
        if result.get(key) not in (None, ""):
            extra.append(f"{key.replace('_', ' ')}: `{result[key]}`")
    if extra:
        lines += ["", " · ".join(extra)]
    if details_url:
        lines += ["", f"[Run details]({details_url})"]
    return "\n".join(lines)


def check_run_payload(result: Mapping[str, Any], *, name: str = "NOA pipeline") -> dict[str, Any]:
    return {"name": name, "status": "completed", "conclusion": verdict_conclusion(result),
            "title": status_description(result), "summary": markdown_report(result, title=name)}


def _run_id(result: Mapping[str, Any]) -> str | None:
    run = result.get("flow_run_id") or result.get("pipeline_run_id")
    return str(run) if run else None


class GitHubReporter:
    """Posts one pipeline result to one commit: status, check run, and a PR comment."""

    def __init__(self, client: GitHubClient, target: GitHubTarget, *, context: str = "noa/pipeline",
                 check_name: str = "NOA pipeline", details_url: str | None = None,
                 channels: tuple[str, ...] = ("status", "check_run", "comment")) -> None:
        self.client = client
        self.target = target
        self.context = context
        self.check_name = check_name
        self.details_url = details_url
        self.channels = channels

    def report(self, result: Mapping[str, Any]) -> ReportOutcome:
        t = self.target
        outcomes: list[ChannelOutcome] = []
        if "status" in self.channels:
            outcomes.append(self._try("status", lambda: self.client.create_status(
                t.owner, t.repo, t.sha, state=verdict_state(result), description=status_description(result),
                context=self.context, target_url=self.details_url), ("id", "state", "url")))
        if "check_run" in self.channels:
            payload = check_run_payload(result, name=self.check_name)
            outcomes.append(self._try("check_run", lambda: self.client.create_check_run(
                t.owner, t.repo, head_sha=t.sha, details_url=self.details_url, external_id=_run_id(result),
                **payload), ("id", "status", "conclusion", "html_url"),
                refused="skipped: check runs need a GitHub App installation token (this token was refused)"))
        if "comment" in self.channels:
            if t.pr_number is None:
                outcomes.append(ChannelOutcome("comment", "skipped", "skipped: no pull request number"))
            else:
                body = COMMENT_MARKER + "\n" + markdown_report(result, title=self.check_name,
                                                               details_url=self.details_url)
                outcomes.append(self._try("comment", lambda: self.client.create_issue_comment(
                    t.owner, t.repo, t.pr_number or 0, body), ("id", "html_url")))
        return ReportOutcome(target=str(t), channels=tuple(outcomes))

    @staticmethod
    def _try(channel: str, call: Callable[[], dict[str, Any]], keep: tuple[str, ...],
             refused: str | None = None) -> ChannelOutcome:
        try:
            answer = call()
        except GitHubError as exc:
            if refused and exc.status == 403:
                return ChannelOutcome(channel, "skipped", refused)
            return ChannelOutcome(channel, "failed", exc.one_line())
        return ChannelOutcome(channel, "ok", data={k: answer[k] for k in keep if k in answer})


def report_pipeline_result(result: Mapping[str, Any], target: GitHubTarget, *, token: str | None = None,
                           base_url: str = DEFAULT_BASE_URL, details_url: str | None = None,
                           context: str = "noa/pipeline", **client_options: Any) -> ReportOutcome:
    """Post ``result`` to ``target`` with ``token`` (default: ``NOA_GITHUB_TOKEN``)."""
    token = token or token_from_env()
    if not token:
        return ReportOutcome(target=str(target), channels=(
            ChannelOutcome("github", "skipped", f"skipped: no GitHub token ({TOKEN_ENV} or the noa-github block)"),))
    with GitHubClient(token, base_url=base_url, **client_options) as client:
        return GitHubReporter(client, target, context=context, details_url=details_url).report(result)
