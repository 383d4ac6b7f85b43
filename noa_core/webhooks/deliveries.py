"""Webhook deliveries already seen: the idempotency store (registry database).

GitHub redelivers a webhook with the same ``X-GitHub-Delivery`` id (a manual
"Redeliver", or a retry after a timeout). The first delivery *claims* its id by
inserting a row (the primary key makes the insert the arbiter between concurrent
requests, on SQLite and PostgreSQL alike); the run it starts is written back to the
row, and every later delivery with that id gets the same run id and starts nothing.
A claim whose start failed is released, so a redelivery may try again.

The table lives in the registry database next to the registry's own tables and is
created when missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Integer, String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from noa_core.config import NoaSettings
from noa_core.storage.database import make_engine
from noa_core.storage.models import Base, UTCDateTime, utcnow
from noa_core.webhooks.github import GitHubTrigger


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), default="github")
    event: Mapped[str] = mapped_column(String(64))
    repo: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str] = mapped_column(Text)
    commit: Mapped[str] = mapped_column(String(64))
    pr_number: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="starting")  # starting | started
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    event: str
    repo: str
    ref: str
    commit: str
    pr_number: int | None
    run_id: str | None
    status: str
    created: datetime


@dataclass(frozen=True)
class Claim:
    """``new``: this request owns the delivery and must start its run."""

    new: bool
    record: DeliveryRecord


def _record(row: WebhookDelivery) -> DeliveryRecord:
    return DeliveryRecord(delivery_id=row.delivery_id, event=row.event, repo=row.repo, ref=row.ref,
                          commit=row.commit, pr_number=row.pr_number, run_id=row.run_id, status=row.status,
                          created=row.created)


class DeliveryStore:
    """Claims, run ids and releases of webhook deliveries, by delivery id."""

    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        if create:
            WebhookDelivery.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]

    @classmethod
    def for_settings(cls, settings: NoaSettings) -> DeliveryStore:
        return cls(make_engine(settings.database_url or settings.layout().registry_db))

    @property
    def engine(self) -> Engine:
        return self._engine

    def _session(self) -> Session:
        return self._sessions()

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        with self._session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            return _record(row) if row is not None else None

    def claim(self, trigger: GitHubTrigger) -> Claim:
        """Insert the delivery; if it is already there, hand back what is recorded."""
        row = WebhookDelivery(delivery_id=trigger.delivery_id, event=trigger.event, repo=trigger.repo,
                              ref=trigger.ref, commit=trigger.commit, pr_number=trigger.pr_number)
        try:
            with self._session() as s, s.begin():
                s.add(row)
            return Claim(True, _record(row))
        except IntegrityError:
            existing = self.get(trigger.delivery_id)
            if existing is None:  # released between our insert and read: claim again
                return self.claim(trigger)
            return Claim(False, existing)

    def set_run(self, delivery_id: str, run_id: str) -> None:
        with self._session() as s, s.begin():
            s.execute(update(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery_id)
                      .values(run_id=run_id, status="started", updated=utcnow()))

    def release(self, delivery_id: str) -> None:
        """Forget a claim whose run could not be started (a redelivery may try again)."""
        with self._session() as s, s.begin():
            s.execute(delete(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery_id,
                                                    WebhookDelivery.run_id.is_(None)))

    def recent(self, limit: int = 50) -> list[DeliveryRecord]:
        with self._session() as s:
            rows = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created.desc()).limit(limit))
            return [_record(r) for r in rows]


__all__ = ["Claim", "DeliveryRecord", "DeliveryStore", "WebhookDelivery"]
