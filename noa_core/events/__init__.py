"""The event bus and its subscribers: change-log logger, metrics collector, trace recorder, alert manager
(plus the Prefect bridge and the rollback feedback to the orchestrator)."""

from noa_core.events.alerts import AlertManager
from noa_core.events.bus import CallbackSubscriber, EventBus
from noa_core.events.changelog import ChangeLogSubscriber
from noa_core.events.feedback import RollbackFeedback
from noa_core.events.interface import Delivery, Event, EventError, Subscriber
from noa_core.events.metrics import MetricsSubscriber
from noa_core.events.prefect_bridge import PrefectBlockNotifier, PrefectEventSubscriber
from noa_core.events.traces import TraceSubscriber

__all__ = ["AlertManager", "CallbackSubscriber", "ChangeLogSubscriber", "Delivery", "Event", "EventBus",
           "EventError", "MetricsSubscriber", "PrefectBlockNotifier", "PrefectEventSubscriber", "RollbackFeedback",
           "Subscriber", "TraceSubscriber", "standard_bus"]


def standard_bus(settings, metrics, tracing, logger, notifier=None, *, prefect: bool | None = None):  # type: ignore[no-untyped-def]
    """The seed's four subscribers (change log, metrics, traces, alerts) and the Prefect bridge."""
    return EventBus([ChangeLogSubscriber(settings), MetricsSubscriber(metrics), TraceSubscriber(tracing),
                     AlertManager(notifier, logger), PrefectEventSubscriber(enabled=prefect)], logger=logger)
