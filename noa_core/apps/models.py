"""The ``apps`` table of the registry database (migration ``0003_apps``).

One row per registered app: an *owned* app (NOA starts it from a project directory on
the local deploy target) or an *external* one (NOA only routes to its URL and never
starts or stops it). Apps that can replace each other share a ``service``: the Caddy
route ``apps-<service>`` that clients use.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from noa_core.storage.models import Base

__all__ = ["AppRow"]


class AppRow(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # owned | external
    service: Mapped[str] = mapped_column(String(100), index=True)
    endpoint: Mapped[str | None] = mapped_column(Text)  # external: http://host:port
    project_dir: Mapped[str | None] = mapped_column(Text)  # owned: directory with a noa.yaml
    health_path: Mapped[str] = mapped_column(String(1024))
    owner: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    instance: Mapped[str | None] = mapped_column(Text)  # owned and running: the Instance as JSON
    created_at: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[str] = mapped_column(String(40))
