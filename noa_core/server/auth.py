"""API tokens: bearer tokens with scopes (read < write < admin), stored hashed in the registry DB.

A token reads ``noa_<key id>_<secret>``. Only the key id, a name, the scopes and the
SHA-256 of the secret are stored (the secret is 32 random bytes, so a fast hash is the
right one; comparison is constant time). ``create`` shows the token once.

The table ``api_tokens`` lives on the registry's SQLAlchemy ``Base`` and is created if
missing. Verified tokens are remembered in-process for ``cache_ttl`` seconds (default
2 s): a revocation made through the same server applies at once, one made by the CLI in
another process within ``cache_ttl``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Float, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from noa_core.errors import BadInput, NoaError
from noa_core.storage.models import Base, UTCDateTime, utcnow

SCOPES = ("read", "write", "admin")
_TOKEN = re.compile(r"^noa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    rate_per_s: Mapped[float | None] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TokenError(NoaError):
    """The token store could not do what was asked."""


@dataclass(frozen=True)
class TokenInfo:
    key_id: str
    name: str
    scope: str
    rate_per_s: float | None
    created: datetime
    revoked: datetime | None

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def as_dict(self) -> dict[str, object]:
        return {"key_id": self.key_id, "name": self.name, "scope": self.scope, "rate_per_s": self.rate_per_s,
                "created": self.created.isoformat(), "revoked": self.revoked.isoformat() if self.revoked else None}


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.key_id, row.name, row.scope, row.rate_per_s, row.created, row.revoked)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, engine: Engine, *, cache_ttl: float = 2.0) -> None:
        self.engine = engine
        ApiToken.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.cache_ttl = cache_ttl
        self._verified: dict[str, tuple[float, TokenInfo | None]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, scope: str, *, rate_per_s: float | None = None) -> tuple[str, TokenInfo]:
        """A new token: ``(token text, info)``. The text is shown once and never stored."""
        if scope not in SCOPES:
            raise BadInput(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if not _NAME.match(name):
            raise BadInput(f"token name {name!r}: 1-80 letters, digits, '.', '_' or '-'")
        if rate_per_s is not None and not 0 < rate_per_s <= 100_000:
            raise BadInput("rate must be within (0, 100000] requests per second")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._sessions() as s, s.begin():
            if s.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
                raise BadInput(f"a token named {name!r} exists already (revoke it or choose another name)")
            row = ApiToken(key_id=key_id, name=name, scope=scope, secret_sha256=_digest(secret),
                           rate_per_s=rate_per_s, created=datetime.now(UTC))
            s.add(row)
            s.flush()
            info = _info(row)
        return f"noa_{key_id}_{secret}", info

    def list(self) -> list[TokenInfo]:
        with self._sessions() as s:
            return [_info(r) for r in s.scalars(select(ApiToken).order_by(ApiToken.created, ApiToken.name))]

    def revoke(self, name_or_key: str) -> TokenInfo:
        with self._sessions() as s, s.begin():
            row = s.get(ApiToken, name_or_key) or s.scalars(
                select(ApiToken).where(ApiToken.name == name_or_key)).first()
            if row is None:
                raise BadInput(f"no token named {name_or_key!r}")
            if row.revoked is None:
                row.revoked = datetime.now(UTC)
            info = _info(row)
        with self._lock:
            self._verified = {k: v for k, v in self._verified.items() if v[1] is None or v[1].key_id != info.key_id}
        return info

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info, or None if it is malformed, unknown, wrong or revoked."""
        now = time.monotonic()
        with self._lock:
            hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = self._verify_db(token)
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = (now + self.cache_ttl, info)
        return info

    def _verify_db(self, token: str) -> TokenInfo | None:
        m = _TOKEN.match(token)
        if not m:
            return None
        with self._sessions() as s:
            row = s.get(ApiToken, m.group(1))
            if row is None or row.revoked is not None:
                return None
            if not hmac.compare_digest(row.secret_sha256, _digest(m.group(2))):
                return None
            return _info(row)
