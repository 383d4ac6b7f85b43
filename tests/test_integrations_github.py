"""GitHub reporting against a local server that checks GitHub's documented request shapes.

The shapes (REST API 2022-11-28): commit status ``state`` in error|failure|pending|success,
``description`` at most 140 characters (GitHub answers 422 "description is too long
(maximum is 140 characters)"); check run ``name`` and ``head_sha`` required, ``status`` in
queued|in_progress|completed, ``conclusion`` required with completed and in
action_required|cancelled|failure|neutral|success|skipped|timed_out, ``output`` needs
``title`` and ``summary`` (<= 65535); issue comment ``body`` required.
"""

from __future__ import annotations

import logging
import re
import time

import pytest

from noa_core.errors import BadInput
from noa_core.integrations.github_api import (
    GitHubClient,
    GitHubTarget,
    markdown_report,
    report_pipeline_result,
    status_description,
)
from tests.integrations_helpers import Call, Reply, recording_server

TOKEN = "ghp_TESTtoken0123456789abcdefSECRET"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
GHES = "/api/v3"

STATUS_KEYS = {"state", "target_url", "description", "context"}
CHECK_KEYS = {"name", "head_sha", "details_url", "external_id", "status", "started_at", "conclusion",
              "completed_at", "output", "actions"}


def shape_errors(call: Call) -> list[str]:
    """What GitHub would refuse in ``call`` (an empty list when the request is well formed)."""
    errors: list[str] = []
    h = call.headers
    if h.get("accept") != "application/vnd.github+json":
        errors.append("accept header")
    if h.get("x-github-api-version") != "2022-11-28":
        errors.append("api version header")
    if not re.fullmatch(r"Bearer \S+", h.get("authorization", "")):
        errors.append("authorization header")
    if not h.get("user-agent"):
        errors.append("user-agent header (GitHub refuses requests without one)")
    if "json" not in h.get("content-type", ""):
        errors.append("content type")
    b = call.body if isinstance(call.body, dict) else {}
    path = call.path.removeprefix(GHES)
    if re.fullmatch(r"/repos/[\w.-]+/[\w.-]+/statuses/[0-9a-f]{40}", path):
        if b.get("state") not in ("error", "failure", "pending", "success"):
            errors.append(f"state {b.get('state')!r}")
        if len(b.get("description") or "") > 140:
            errors.append("description is too long (maximum is 140 characters)")
        errors += [f"unknown field {k}" for k in set(b) - STATUS_KEYS]
    elif re.fullmatch(r"/repos/[\w.-]+/[\w.-]+/check-runs", path):
        for key in ("name", "head_sha"):
            if not isinstance(b.get(key), str) or not b[key]:
                errors.append(f"{key} is required")
        if b.get("status", "queued") not in ("queued", "in_progress", "completed"):
            errors.append(f"status {b.get('status')!r}")
        if "conclusion" in b and b["conclusion"] not in ("action_required", "cancelled", "failure", "neutral",
                                                          "success", "skipped", "timed_out"):
            errors.append(f"conclusion {b['conclusion']!r}")
        if b.get("status") == "completed" and "conclusion" not in b:
            errors.append("conclusion is required when status is completed")
        out = b.get("output")
        if out is not None:
            if not isinstance(out.get("title"), str) or not isinstance(out.get("summary"), str):
                errors.append("output needs title and summary")
            elif len(out["summary"]) > 65535:
                errors.append("summary too long")
        errors += [f"unknown field {k}" for k in set(b) - CHECK_KEYS]
    elif re.fullmatch(r"/repos/[\w.-]+/[\w.-]+/issues/\d+/comments", path):
        if not isinstance(b.get("body"), str) or not b["body"]:
            errors.append("body is required")
    else:
        errors.append(f"unexpected path {call.path}")
    return errors


def github(overrides: dict[str, list[Reply]] | None = None):
    """A handler that answers like GitHub: 422 for malformed bodies, 201 with a resource otherwise."""
    queue = {k: list(v) for k, v in (overrides or {}).items()}

    def handle(call: Call) -> Reply:
        for fragment, replies in queue.items():
            if fragment in call.path and replies:
                return replies.pop(0)
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        errors = shape_errors(call)
        if errors:
            return Reply(422, {"message": "Validation Failed", "errors": [{"message": e} for e in errors]})
        b = call.body
        if "/statuses/" in call.path:
            return Reply(201, {"id": 1, "state": b["state"], "context": b.get("context", "default"),
                               "url": f"https://example.invalid{call.path}"})
        if call.path.endswith("/check-runs"):
            return Reply(201, {"id": 4, "status": b.get("status", "queued"), "conclusion": b.get("conclusion"),
                               "html_url": "https://example.invalid/runs/4"})
        return Reply(201, {"id": 7, "body": b["body"], "html_url": "https://example.invalid/pull/5#issuecomment-7"})

    return handle


PASSED = {"verdict": "passed", "project": "shop-api", "flow_run_id": "fr-1", "stages": [
    {"name": "analysis", "status": "passed", "duration_s": 1.25, "details": {"reason": "confidence 0.91"}},
    {"name": "testing", "status": "passed", "duration_s": 7.5, "details": "476 passed"},
    {"name": "production", "status": "skipped", "duration_s": 0.0, "details": {}},
]}
FAILED = {"verdict": "failed", "stopped_by": "security", "stages": [
    {"name": "analysis", "status": "passed", "duration_s": 1.0, "details": {}},
    {"name": "security", "status": "failed", "duration_s": 3.0,
     "details": {"reason": "semgrep: 3 high findings | " + "x" * 400}},
]}


def test_passed_pipeline_posts_status_check_run_and_comment_to_enterprise_base_url(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with recording_server(github()) as gh:
        outcome = report_pipeline_result(PASSED, GitHubTarget("acme", "shop-api", SHA, 5), token=TOKEN,
                                         base_url=gh.url + GHES, details_url="http://noa.local/runs/fr-1")
    assert outcome.ok, outcome.as_dict()
    assert [c.status for c in outcome.channels] == ["ok", "ok", "ok"]
    paths = [c.path for c in gh.calls]
    assert paths == [f"{GHES}/repos/acme/shop-api/statuses/{SHA}", f"{GHES}/repos/acme/shop-api/check-runs",
                     f"{GHES}/repos/acme/shop-api/issues/5/comments"]
    assert all(shape_errors(c) == [] for c in gh.calls)
    status, check, comment = (c.body for c in gh.calls)
    assert status["state"] == "success" and status["context"] == "noa/pipeline"
    assert status["target_url"] == "http://noa.local/runs/fr-1"
    assert check["conclusion"] == "success" and check["head_sha"] == SHA and check["external_id"] == "fr-1"
    assert "| testing | ✅ passed | 7.5 s | 476 passed |" in check["output"]["summary"]
    assert "[Run details](http://noa.local/runs/fr-1)" in comment["body"]
    assert TOKEN not in caplog.text and TOKEN not in repr(outcome.as_dict())


def test_failed_pipeline_is_a_failure_with_a_short_description() -> None:
    with recording_server(github()) as gh:
        outcome = report_pipeline_result(FAILED, GitHubTarget("acme", "shop-api", SHA), token=TOKEN,
                                         base_url=gh.url)
    assert [c.channel for c in outcome.channels] == ["status", "check_run", "comment"]
    assert outcome.channels[2].status == "skipped" and "no pull request" in outcome.channels[2].reason
    status, check = (c.body for c in gh.calls)
    assert status["state"] == "failure"
    assert status["description"] == "NOA pipeline failed: 1 failed, 1 passed; failed at security"
    assert check["conclusion"] == "failure"
    assert "semgrep: 3 high findings \\|" in check["output"]["summary"]  # pipes escaped inside the table
    assert all(shape_errors(c) == [] for c in gh.calls)


def test_description_never_exceeds_140_characters() -> None:
    many = {"verdict": "failed", "stages": [{"name": f"stage-with-a-rather-long-name-{i}", "status": s}
                                            for i, s in enumerate(["failed", "weird-status-x", "other-status-y",
                                                                   "passed", "skipped", "unknown-status-zz"] * 3)]}
    text = status_description(many)
    assert len(text) <= 140 and text.endswith("…")
    with recording_server(github()) as gh, GitHubClient(TOKEN, base_url=gh.url) as client:
        client.create_status("acme", "shop-api", SHA, state="error", description="é" * 500)
    assert len(gh.calls[0].body["description"]) == 140 and shape_errors(gh.calls[0]) == []


def test_server_errors_and_secondary_rate_limits_are_retried_as_told() -> None:
    waits: list[float] = []
    overrides = {"/statuses/": [Reply(502, {"message": "Server Error"})],
                 "/check-runs": [Reply(403, {"message": "You have exceeded a secondary rate limit."},
                                       {"Retry-After": "3"})],
                 "/comments": [Reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": "1"}),
                               Reply(503, None)]}
    with recording_server(github(overrides)) as gh, \
            GitHubClient(TOKEN, base_url=gh.url, sleep=waits.append) as client:
        from noa_core.integrations.github_api import GitHubReporter

        outcome = GitHubReporter(client, GitHubTarget("acme", "shop-api", SHA, 9)).report(PASSED)
    assert outcome.ok, outcome.as_dict()
    assert waits == [1.0, 3.0, 1.0, 2.0]  # backoff, Retry-After, Retry-After, backoff (second attempt)
    assert len(gh.calls) == 7


def test_rate_limit_longer_than_the_cap_fails_without_waiting() -> None:
    waits: list[float] = []
    overrides = {"/statuses/": [Reply(403, {"message": "secondary rate limit"}, {"Retry-After": "3600"})]}
    with recording_server(github(overrides)) as gh, \
            GitHubClient(TOKEN, base_url=gh.url, sleep=waits.append, max_wait_s=30) as client:
        from noa_core.integrations.github_api import GitHubError

        with pytest.raises(GitHubError, match="rate limited by GitHub for 3600 s"):
            client.create_status("acme", "shop-api", SHA, state="pending")
    reset = str(int(time.time()) + 3600)  # primary limit: remaining 0 until x-ratelimit-reset
    overrides = {"/statuses/": [Reply(403, {"message": "API rate limit exceeded"},
                                      {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})]}
    with recording_server(github(overrides)) as gh, \
            GitHubClient(TOKEN, base_url=gh.url, sleep=waits.append, max_wait_s=30) as client:
        with pytest.raises(GitHubError, match="rate limited by GitHub for 360[01] s"):
            client.create_status("acme", "shop-api", SHA, state="pending")
    assert waits == []


def test_check_run_refused_for_a_personal_token_is_skipped_and_bad_credentials_fail() -> None:
    overrides = {"/check-runs": [Reply(403, {"message": "Resource not accessible by personal access token"})]}
    with recording_server(github(overrides)) as gh:
        outcome = report_pipeline_result(PASSED, GitHubTarget("acme", "shop-api", SHA), token=TOKEN, base_url=gh.url)
        wrong = "ghp_WRONGtoken_do_not_print"
        refused = report_pipeline_result(PASSED, GitHubTarget("acme", "shop-api", SHA), token=wrong, base_url=gh.url,
                                         max_retries=0)
    by = {c.channel: c for c in outcome.channels}
    assert by["status"].status == "ok"
    assert by["check_run"].status == "skipped" and "GitHub App" in by["check_run"].reason
    assert outcome.ok
    assert not refused.ok
    assert refused.channels[0].reason.endswith("401 Bad credentials")
    assert wrong not in str(refused.as_dict())


def test_bad_inputs_are_refused_before_any_request(monkeypatch) -> None:
    with recording_server(github()) as gh:
        with GitHubClient(TOKEN, base_url=gh.url) as client:
            assert "***" in repr(client) and TOKEN not in repr(client)
            with pytest.raises(BadInput, match="state must be one of error, failure, pending, success"):
                client.create_status("acme", "shop-api", SHA, state="passed")
            with pytest.raises(BadInput, match="conclusion"):
                client.create_check_run("acme", "shop-api", name="x", head_sha=SHA, conclusion="passed")
            with pytest.raises(BadInput, match="needs a conclusion"):
                client.create_check_run("acme", "shop-api", name="x", head_sha=SHA, status="completed")
        with pytest.raises(BadInput, match="40 .* hex"):
            GitHubTarget("acme", "shop-api", "main")
        with pytest.raises(BadInput, match="not a valid name"):
            GitHubTarget("acme/../x", "shop-api", SHA)
        monkeypatch.delenv("NOA_GITHUB_TOKEN", raising=False)
        skipped = report_pipeline_result(PASSED, GitHubTarget("acme", "shop-api", SHA), base_url=gh.url)
        assert skipped.channels[0].status == "skipped" and "NOA_GITHUB_TOKEN" in skipped.channels[0].reason
        monkeypatch.setenv("NOA_GITHUB_TOKEN", TOKEN)
        from_env = report_pipeline_result(PASSED, GitHubTarget("acme", "shop-api", SHA), base_url=gh.url)
        assert from_env.ok
    assert len(gh.calls) == 2  # only the run with the env token reached the server


def test_markdown_report_without_stages() -> None:
    text = markdown_report({"verdict": "error"})
    assert "⚠️" in text and "_no stages ran_" in text


def test_block_token_from_a_prefect_secret_block(prefect_api_url: str, monkeypatch) -> None:
    from prefect.blocks.system import Secret

    from blocks.github import NoaGitHub

    monkeypatch.delenv("NOA_GITHUB_TOKEN", raising=False)
    Secret(value=TOKEN).save("noa-test-github-token", overwrite=True)
    with recording_server(github()) as gh:
        block = NoaGitHub(base_url=gh.url + GHES, owner="acme", repo="shop-api",
                          token_secret_block="noa-test-github-token")
        assert TOKEN not in repr(block)
        with block.client() as client:
            client.create_status("acme", "shop-api", SHA, state="pending", description="NOA pipeline running")
        assert NoaGitHub(owner="acme", repo="shop-api", token_secret_block="no-such-secret").resolve_token() is None
    assert gh.calls[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert shape_errors(gh.calls[0]) == []
