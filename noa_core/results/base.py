"""The base of every flow result: a pydantic model that still reads like the dict flows returned.

Before the result models, every flow returned ``dict[str, Any]``. Callers written against
that shape (``report["drop_id"]``, ``report.get("reason")``, ``{**report}``) keep working:
item access reads the field's JSON form (nested models come back as dicts, as before).
New code reads attributes (``report.drop_id``), which editors complete and type checkers check.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["FlowResult", "ResultPart"]


class ResultPart(BaseModel):
    """A nested part of a flow result (a step, a stage, a summary); unknown keys are dropped."""


class FlowResult(BaseModel):
    """A flow's result. ``model_dump(mode="json")`` is what ``noa ... --json`` prints.

    Read-only mapping access (``result["key"]``, ``result.get("key")``, ``"key" in result``,
    ``dict(result)``) is kept for callers of the former dict results; it returns the JSON form.
    """

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    def _names(self) -> dict[str, str]:
        """JSON key -> attribute name (they differ where a key is a Python keyword, like ``from``)."""
        names = {(f.serialization_alias or f.alias or n): n for n, f in type(self).model_fields.items()}
        return {**names, **{k: k for k in self.model_extra or {}}}

    def _fields(self) -> list[str]:
        return list(self._names())

    def __getitem__(self, key: str) -> Any:
        name = self._names().get(key)
        if name is None:
            raise KeyError(key)
        return self.model_dump(mode="json", include={name})[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``result[key]``, or ``default`` when the model has no such field."""
        return self[key] if key in self._fields() else default

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def keys(self) -> list[str]:
        """The field names, in the order ``--json`` prints them."""
        return self._fields()

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``model_dump(mode="json")``)."""
        return self.model_dump(mode="json")
