"""Pydantic models at the API edge (request bodies are validated here, with size limits)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from noa_core.results import (
    CicdReport,
    DeployReport,
    DropReport,
    MergeReport,
    PipelineReport,
    RollbackReport,
)


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid UTF-8 (no lone surrogates)") from None
    return value


#: no control characters except tab and newlines (the rule is in the OpenAPI spec as a pattern)
SafeText = Annotated[str, Field(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"), AfterValidator(_utf8)]
#: one line, no control characters
Line = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]*$"), AfterValidator(_utf8)]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+@-]{0,199}$"
DROP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"
COMMIT_PATTERN = r"^[0-9a-f]{40}([0-9a-f]{24})?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    cache: str
    prefect: str
    flows: dict[str, str]
    inference: str
    change_log: str
    plugins: dict[str, str]


class ProjectOut(BaseModel):
    id: int
    name: str
    root_commits: list[str]
    created: str


class ProjectList(BaseModel):
    items: list[ProjectOut]
    total: int


class DropOut(BaseModel):
    id: str
    project_id: int | None
    source: str
    kind: str
    sandbox: str | None
    commit: str | None
    confidence: float | None
    status: str
    created: str
    finished: str | None
    file_count: int | None
    total_bytes: int | None
    tree_hash: str | None
    has_report: bool


class DropList(BaseModel):
    items: list[DropOut]
    total: int
    limit: int
    offset: int


class ProjectDetail(BaseModel):
    project: ProjectOut
    drops: list[DropOut]


class ReportRef(BaseModel):
    drop_id: str
    bytes: int
    modified: str


class ReportList(BaseModel):
    items: list[ReportRef]
    total: int


class ProjectCreate(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN, description="project name")]
    root_commits: Annotated[list[Annotated[str, Field(pattern=COMMIT_PATTERN)]], Field(max_length=50)] = []


class DropCreate(Strict):
    source: Annotated[Line, Field(min_length=1, max_length=2000,
                                  description="directory, git URL, .tar.gz/.zip, or pypi:NAME==VERSION")]
    sandbox: Literal["A", "B", "C", "auto"] = "auto"
    use_ai: bool = False


class PipelineCreate(Strict):
    source: Annotated[Line, Field(min_length=1, max_length=2000)]
    sandbox: Literal["A", "B", "C", "auto"] = "auto"
    use_ai: bool = False
    deploy: bool = Field(True, description="end with the deploy (staging, then canary to production)")


class MergeCreate(Strict):
    sandboxes: Annotated[list[Literal["A", "B", "C"]], Field(max_length=3)] | None = None


class DeployCreate(Strict):
    project_dir: Annotated[Line, Field(min_length=1, max_length=2000)]
    env: Literal["staging", "production"] = "staging"
    strategy: Literal["blue-green", "canary"] | None = None
    app: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None


class RollbackCreate(Strict):
    app: Annotated[str, Field(pattern=NAME_PATTERN)]
    env: Literal["staging", "production"] = "production"


class WriteOut(BaseModel):
    id: str
    kind: str
    subject: str
    flow_run_id: str | None
    change_id: str | None
    steps: dict[str, str]
    status_url: str | None
    ui_url: str | None


#: the results of the flows the server starts (POST /v1/drops, /merges, /pipelines, /deploys, /rollbacks, cicd)
RunResult = DropReport | MergeReport | PipelineReport | RollbackReport | DeployReport | CicdReport


class RunOut(BaseModel):
    flow_run_id: str
    name: str
    state: str
    state_name: str
    message: str | None
    final: bool
    start_time: str | None
    end_time: str | None
    parameters: dict[str, Any]
    ui_url: str | None
    result: RunResult | None = Field(None, description="the flow's result (the model `noa ... --json` prints) "
                                                       "once the run COMPLETED; null before, or when it cannot "
                                                       "be read")


class HitOut(BaseModel):
    kind: Literal["project", "drop", "file", "symbol", "text"]
    score: float
    name: str
    drop_id: str | None
    path: str | None
    line: int | None
    snippet: str | None
    symbol_type: str | None


class SearchOut(BaseModel):
    query: str
    total: int
    page: int
    per_page: int
    items: list[HitOut]


class CompletionIn(Strict):
    prompt: Annotated[SafeText, Field(min_length=1, max_length=8000)]
    max_tokens: Annotated[int, Field(ge=1, le=256)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[SafeText, Field(max_length=8000)]


class ChatIn(Strict):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=20)]
    max_tokens: Annotated[int, Field(ge=1, le=256)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0


class GenerationOut(BaseModel):
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str | None


class TokenCreate(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")]
    scope: Literal["read", "write", "admin"]
    rate_per_s: Annotated[float, Field(gt=0, le=100_000)] | None = None


class TokenOut(BaseModel):
    key_id: str
    name: str
    scope: str
    rate_per_s: float | None
    created: str
    revoked: str | None


class TokenCreated(BaseModel):
    token: str = Field(description="shown once; store it now")
    info: TokenOut


class TokenList(BaseModel):
    items: list[TokenOut]


class ReleaseSummary(BaseModel):
    app: str
    env: str
    active: dict[str, Any] | None
    history: int


class ReleaseList(BaseModel):
    items: list[ReleaseSummary]
    total: int
