"""NOA settings: where NOA_HOME is and the limits that guard ingestion and execution.

Settings come from environment variables (``NOA_*``) and are passed down explicitly;
nothing here is a module-level singleton.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestLimits(BaseModel):
    """Limits applied while receiving a code drop (archives, git clones, directories)."""

    max_total_bytes: int = Field(512 * 1024 * 1024, description="uncompressed size of a whole drop")
    max_file_bytes: int = Field(64 * 1024 * 1024, description="size of any single file or git blob")
    max_files: int = Field(100_000, description="number of files in a drop")
    max_compression_ratio: float = Field(200.0, description="uncompressed/compressed, per member and overall")
    max_path_depth: int = Field(64, description="directory nesting")
    fetch_timeout_s: float = Field(300.0, description="network fetch timeout")
    refuse_repo_code: bool = Field(True, description="refuse local git repositories with hooks or config that runs code")
    ratio_grace_bytes: int = Field(
        1024 * 1024, description="uncompressed bytes always allowed before max_compression_ratio applies"
    )
    max_repo_bytes: int = Field(
        2 * 1024 * 1024 * 1024, description="on-disk size of a git clone, all history included"
    )


class ExecLimits(BaseModel):
    """Limits for running dropped code (tests, builds, benchmarks)."""

    cpu_seconds: int = 600
    memory_bytes: int = 4 * 1024 * 1024 * 1024
    wall_seconds: float = 900.0
    max_processes: int = 512
    network: bool = False
    file_size_bytes: int = Field(2 * 1024 * 1024 * 1024, description="RLIMIT_FSIZE: largest file one process may write")
    tmp_bytes: int = Field(1024 * 1024 * 1024, description="size of the private tmpfs mounted on /tmp (HOME lives there)")
    output_tail_chars: int = Field(64 * 1024, description="how much of stdout/stderr an ExecResult keeps (the tail)")


class NoaSettings(BaseSettings):
    """Top-level settings. ``NOA_HOME`` defaults to ``./.noa``."""

    model_config = SettingsConfigDict(env_prefix="NOA_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path(".noa")
    database_url: str | None = None
    redis_url: str | None = None
    prefect_port: int = 4200
    ingest: IngestLimits = IngestLimits()
    exec: ExecLimits = ExecLimits()
    low_confidence: float = Field(0.5, description="below this a drop always goes to sandbox C")
    llm_model_path: Path | None = None
    llm_max_tokens: int = 80

    def layout(self) -> "HomeLayout":
        return HomeLayout(self.home.resolve())


@dataclass(frozen=True)
class HomeLayout:
    """The directories under NOA_HOME (see DESIGN.md, "Workspace on disk")."""

    root: Path

    @property
    def drops(self) -> Path:
        return self.root / "drops"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def sandboxes(self) -> Path:
        return self.root / "sandboxes"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def cltree(self) -> Path:
        return self.root / "cltree"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def registry_db(self) -> Path:
        return self.root / "registry.db"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def ensure(self) -> "HomeLayout":
        for d in (self.root, self.drops, self.archive, self.backups, self.cltree, self.reports,
                  self.prefect, self.tmp, self.sandboxes):
            d.mkdir(parents=True, exist_ok=True)
        return self
