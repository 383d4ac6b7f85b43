"""Error hierarchy shared by every port.

Every error NOA raises derives from :class:`NoaError`. :class:`BadInput` (and its
subclasses) means the user gave NOA something it refuses: the CLI prints the message on
one line and exits with code 2. Other errors mean NOA itself could not do the job.
"""

from __future__ import annotations


class NoaError(Exception):
    """Base class of every error NOA raises on purpose."""

    exit_code: int = 1

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return text or self.__class__.__name__


class BadInput(NoaError):
    """The input was refused (malformed, hostile, over a limit). Exit code 2."""

    exit_code = 2


class HostileInput(BadInput):
    """The input tries to escape its sandbox, exhaust resources or run code on ingest."""


class LimitExceeded(BadInput):
    """The input is larger than a configured ingestion limit."""


class ManifestError(BadInput):
    """A ``noa.yaml`` that does not validate against the manifest schema."""
