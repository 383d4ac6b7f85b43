"""The drop-in folder, ``NOA_HOME/drop-in/``: the folder door of the code drop.

A person copies a directory, an archive, or a text file holding a git URL or
``pypi:NAME==VERSION`` into the folder; ``noa watch`` takes each complete item once and
runs it through the ``code_drop`` flow; the item ends in ``processed/``, ``failed/`` or
``quarantine/`` with its report or reason.  This package is the Prefect-free domain:

* :mod:`.items` what an item is, its settle signature and content key;
* :mod:`.settle` when an item is complete;
* :mod:`.journal` the processed-state journal (exactly once, across restarts);
* :mod:`.folder` the folder layout and moving items by outcome;
* :mod:`.runs` the run port (:class:`~.runs.RunBackend`) the watcher runs items through;
* :mod:`.progress` the watcher's options, events and item results;
* :mod:`.outcome` how a finished run files its item;
* :mod:`.service` the watcher loop, :mod:`.recovery` what it does on start with items left before.
"""

from __future__ import annotations

from noa_core.dropin.folder import DropInBusy, DropInFolder
from noa_core.dropin.journal import ItemRecord, Journal
from noa_core.dropin.progress import DropInEvent, ItemResult, WatchOptions
from noa_core.dropin.runs import RunBackend, RunOutcome, RunRequest, RunStatus, RunTicket
from noa_core.dropin.service import DropInService
from noa_core.dropin.settle import SettleTracker

__all__ = [
    "DropInBusy", "DropInEvent", "DropInFolder", "DropInService", "ItemRecord", "ItemResult", "Journal", "RunBackend",
    "RunOutcome", "RunRequest", "RunStatus", "RunTicket", "SettleTracker", "WatchOptions",
]
