"""Documented error answers (every status code the API can give is in the OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from noa_core.server.schemas import ErrorBody

_DESCRIPTIONS = {
    400: "Malformed request (e.g. a Content-Length that is not a number)",
    401: "Missing, malformed, unknown or revoked bearer token",
    403: "The token's scope is too low for this endpoint",
    404: "Not found",
    409: "Conflict",
    413: "Request body over the size limit (refused before it is read whole)",
    429: "Per-token rate limit exceeded; retry after Retry-After seconds",
    503: "Skipped: a part this endpoint needs is not available (the detail says which), or the write was undone",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
        if code == 401:
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
        out[code] = entry
    return out


AUTH = (401, 403, 429)
BODY = (400, 413)
