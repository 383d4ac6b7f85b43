"""The error-handling policy of the seed's Error Handling Flow.

error -> recoverable? yes: retry -> still failing: fallback -> continue.
         no (or no fallback): log -> change log -> alert -> critical? rollback : mark failed.

Recoverable means transient: the network, a timeout, a server that did not answer.
Refused input and failed gates are never retried. A failure is critical when it happens
in production (the release there must be rolled back).
"""

from __future__ import annotations

from dataclasses import dataclass

from noa_core.errors import BadInput

__all__ = ["ErrorPolicy", "is_critical", "is_recoverable"]

_TRANSIENT_NAMES = frozenset({
    "NetworkError", "TimeoutError", "ConnectionError", "ConnectError", "ConnectTimeout", "ReadTimeout",
    "WriteTimeout", "PoolTimeout", "RemoteProtocolError", "PrefectServerError", "OperationalError",
    "ServiceUnavailable", "BrokenPipeError", "ConnectionResetError", "ConnectionRefusedError",
})


def is_recoverable(exc: BaseException) -> bool:
    """Worth a retry: a transient error (by class, anywhere in its MRO), never bad input."""
    if isinstance(exc, BadInput):
        return False
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def is_critical(stage: str) -> bool:
    return stage == "production"


@dataclass(frozen=True)
class ErrorPolicy:
    """How many times a recoverable stage error is retried, and the pause between tries."""

    retries: int = 2
    delay_s: float = 1.0
