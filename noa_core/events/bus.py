"""The event bus: every subscriber sees every event; one failing subscriber never stops the others.

Synchronous and in-process (subscribers are cheap or hand work to their own threads);
:meth:`EventBus.publish` returns what each subscriber did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from noa_core.events.interface import Delivery, Event, Subscriber


class EventBus:
    def __init__(self, subscribers: Iterable[Subscriber] = (), *, logger: logging.Logger | None = None) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)
        self._lock = threading.Lock()
        self._log = logger or logging.getLogger("noa.events")

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, name: str) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s.name != name]

    @property
    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers)

    def publish(self, event: Event) -> list[Delivery]:
        out: list[Delivery] = []
        for sub in self.subscribers:
            try:
                status = sub.handle(event) or "ok"
            except Exception as exc:  # noqa: BLE001 - isolate subscribers from each other
                status = f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                self._log.warning("subscriber %s failed on %s: %s", sub.name, event.kind, status,
                                  extra={"event_id": event.id})
            out.append(Delivery(sub.name, status))
        return out

    def emit(self, kind: str, subject: str, severity: str = "info", **fields: Any) -> list[Delivery]:
        """Shorthand: ``bus.emit("deploy.failed", "hello", "critical", payload={...}, run_id=...)``."""
        return self.publish(Event(kind=kind, subject=subject, severity=severity, **fields))  # type: ignore[arg-type]


class CallbackSubscriber:
    """Adapts a plain function (used by plugins and by the master orchestrator's feedback)."""

    def __init__(self, name: str, fn: Callable[[Event], str | None], kinds: Iterable[str] | None = None) -> None:
        self.name = name
        self._fn = fn
        self._kinds = set(kinds) if kinds is not None else None

    def handle(self, event: Event) -> str:
        if self._kinds is not None and event.kind not in self._kinds and event.family not in self._kinds:
            return "skipped: not subscribed to this kind"
        return self._fn(event) or "ok"
