"""Errors specific to fetching a code drop.

The refusals (hostile input, limits, bad input) use the shared classes of
:mod:`noa_core.errors`; only the transient failure lives here.
"""

from __future__ import annotations

from noa_core.errors import NoaError


class NetworkError(NoaError):
    """A transient fetch failure (connection refused, timeout, HTTP 5xx/429).

    Callers may retry this one; every other error from :func:`fetch_source` is final.
    """


__all__ = ["NetworkError"]
