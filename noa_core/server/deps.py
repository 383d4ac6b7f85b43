"""Request dependencies: the app's state and bearer-token authentication with scopes and rate limits."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from noa_core.server.auth import TokenInfo
from noa_core.server.state import ServerState

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="`noa server token create NAME --scope read|write|admin`; "
                                "admin > write > read")


def state_of(request: Request) -> ServerState:
    return request.app.state.noa  # type: ignore[no-any-return]


def require(scope: str) -> Callable[..., Awaitable[TokenInfo]]:
    async def authenticate(request: Request,
                           creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> TokenInfo:
        state = state_of(request)
        if creds is None or not creds.credentials:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        info = state.tokens.verify(creds.credentials)
        if info is None:
            raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if not info.allows(scope):
            raise HTTPException(403, f"token {info.name!r} has scope {info.scope}; this needs {scope}")
        wait = state.buckets.take(info.key_id, info.rate_per_s)
        if wait:
            state.metrics.rate_limited.inc()
            raise HTTPException(429, "rate limit exceeded for this token",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return info

    return authenticate
