"""Receiving a code drop safely: directories, git repositories, archives, PyPI sdists.

Everything received is treated as hostile (DESIGN.md, "Untrusted code"):

* :func:`parse_source` turns a SOURCE argument into a :class:`SourceSpec`;
* :func:`fetch_source` writes the drop's plain files into a destination directory,
  all or nothing, under :class:`~noa_core.config.IngestLimits`, and returns a
  :class:`FetchedSource`.

Refusals are :class:`~noa_core.errors.HostileInput`,
:class:`~noa_core.errors.LimitExceeded` or :class:`~noa_core.errors.BadInput`, each with
a one-line message naming the culprit and the rule; :class:`NetworkError` is the one
transient failure worth retrying.
"""

from __future__ import annotations

from noa_core.intake.errors import NetworkError
from noa_core.intake.fetch import fetch_source
from noa_core.intake.source import FetchedSource, SourceSpec, parse_source

__all__ = ["FetchedSource", "NetworkError", "SourceSpec", "fetch_source", "parse_source"]
