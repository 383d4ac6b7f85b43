"""The wire between NOA and its model process: one JSON object per line, each way.

The parent writes a :class:`Request` line on the child's stdin; the child answers with
one :class:`Reply` line on its own protocol channel (its original stdout; llama.cpp's
own prints are sent to stderr). The first line the child writes, before any request,
is the ``ready`` reply (``id`` 0) once the model is loaded, or a failed reply when the
load failed.

Plain dataclasses checked by hand, not pydantic: the model process starts once per drop
and importing pydantic there would cost more than the rest of its start-up but llama.cpp.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

OPS = ("chat", "complete", "info")
READY_ID = 0


class ProtocolError(ValueError):
    """A line that is not a valid request or reply."""


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    messages: list[dict[str, str]] = field(default_factory=list)  # op "chat"
    prompt: str = ""                                               # op "complete"
    max_tokens: int = 160
    temperature: float = 0.0
    grammar: str | None = None                                     # GBNF

    def __post_init__(self) -> None:
        _check(isinstance(self.id, int) and self.id >= 1, "id must be an integer >= 1")
        _check(self.op in OPS, f"op must be one of {', '.join(OPS)}")
        _check(isinstance(self.messages, list) and all(
            isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
            for m in self.messages), "messages must be a list of {role, content} strings")
        _check(isinstance(self.prompt, str), "prompt must be a string")
        _check(isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= 4096, "max_tokens must be 1..4096")
        _check(isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 2.0,
               "temperature must be 0..2")
        _check(self.grammar is None or isinstance(self.grammar, str), "grammar must be a string")


@dataclass(frozen=True)
class Reply:
    id: int
    ok: bool
    error: str = ""
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # ready and "info" replies

    def __post_init__(self) -> None:
        _check(isinstance(self.id, int) and isinstance(self.ok, bool), "a reply needs an integer id and ok")
        _check(isinstance(self.text, str) and isinstance(self.error, str), "text and error must be strings")
        _check(isinstance(self.info, dict), "info must be an object")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ProtocolError(message)


def encode(message: Request | Reply) -> bytes:
    return json.dumps(asdict(message), separators=(",", ":")).encode() + b"\n"


def _decode(cls: type[Any], line: bytes | str) -> Any:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    _check(not unknown, f"unknown fields: {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ProtocolError(str(exc)) from None


def decode_request(line: bytes | str) -> Request:
    return _decode(Request, line)  # type: ignore[no-any-return]


def decode_reply(line: bytes | str) -> Reply:
    return _decode(Reply, line)  # type: ignore[no-any-return]
