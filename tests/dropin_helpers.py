"""Helpers for the drop-in tests: small projects, archives, and a fake run backend."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import textwrap
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noa_core.dropin.runs import RunOutcome, RunRequest, RunStatus, RunTicket


def write_project(root: Path, name: str, *, tests: int = 2, failing: int = 0) -> Path:
    """A src-layout Python project NAME with ``tests`` passing and ``failing`` failing tests."""
    files = {
        "pyproject.toml": f"""
            [project]
            name = "{name}"
            version = "0.1"

            [tool.pytest.ini_options]
            testpaths = ["tests"]
        """,
        f"src/{name}/__init__.py": """
            def double(x):
                return 2 * x
        """,
        f"tests/test_{name}.py": f"from {name} import double\n\n"
        + "".join(f"def test_ok_{i}():\n    assert double({i}) == {2 * i}\n\n" for i in range(tests))
        + "".join(f"def test_bad_{i}():\n    assert double({i}) == -1\n\n" for i in range(failing)),
    }
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def tar_gz_of(src: Path, dest: Path, arcname: str | None = None) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=arcname or src.name)
    return dest


def tar_gz_bytes(files: dict[str, bytes], top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_slip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/ok.py", "x = 1\n")
        zf.writestr("../../escaped.txt", "pwned")
    return path


def read_journal(drop_in: Path) -> list[dict[str, Any]]:
    path = drop_in / ".journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def archive_is_whole(path: Path) -> bool:
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                return zf.testzip() is None
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    tf.extractfile(m).read()  # type: ignore[union-attr]
        return True
    except Exception:  # noqa: BLE001 - any failure means "not whole"
        return False


class FakeBackend:
    """Runs items in-process: ``behaviour(request) -> RunOutcome`` after ``delay`` seconds."""

    description = "fake backend"

    def __init__(self, home: Path, behaviour: Callable[[RunRequest], RunOutcome] | None = None,
                 delay: float = 0.05) -> None:
        self.home = home
        self.behaviour = behaviour or self.default_behaviour
        self.delay = delay
        self.runs: dict[str, dict[str, Any]] = {}
        self.by_idempotency: dict[str, str] = {}
        self.submitted: list[RunRequest] = []
        self.marked_crashed: list[str] = []
        self.active = 0
        self.max_active = 0
        self.archive_whole_at_submit: dict[str, bool] = {}
        self.started = self.stopped = self.serving = False

    async def start(self) -> None:
        self.started = True

    async def serve(self) -> None:
        self.serving = True
        for run_id, run in self.runs.items():  # like a runner picking up scheduled runs
            if run["state"] == "scheduled" and run.get("task") is None and run.get("request") is not None:
                run["task"] = asyncio.create_task(self._run(run_id))

    async def stop(self) -> None:
        self.stopped = True
        for run in self.runs.values():
            task = run.get("task")
            if task is not None and not task.done():
                task.cancel()
                run["state"] = "final"
                run["outcome"] = RunOutcome("cancelled", message="runner stopped")

    def default_behaviour(self, request: RunRequest) -> RunOutcome:
        name = request.name
        if "hostile" in name:
            return RunOutcome("failed", error_type="HostileInput", hostile=True, bad_input=True,
                              message=f"refused archive {name!r}: member '../../escaped.txt' escapes")
        failing = "failing" in name
        reports = self.home / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        report_path = reports / f"{uuid.uuid4().hex[:8]}-{name}.json"
        report = {"drop_id": report_path.stem, "source": request.source, "project": name,
                  "tests": {"status": "failed" if failing else "passed", "passed": 2, "failed": 1 if failing else 0,
                            "errors": 0},
                  "sandbox": "C" if failing else "A", "confidence": 0.9, "report_path": str(report_path)}
        report_path.write_text(json.dumps(report))
        report_path.with_suffix(".md").write_text(f"# report {name}\n")
        return RunOutcome("completed", report=report)

    def seed(self, state: str, outcome: RunOutcome | None = None, idempotency_key: str | None = None,
             request: RunRequest | None = None) -> str:
        """A run that existed before the watcher started (``scheduled``, ``active`` or ``final``)."""
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {"state": state, "outcome": outcome, "request": request}
        if idempotency_key:
            self.by_idempotency[idempotency_key] = run_id
        return run_id

    async def submit(self, request: RunRequest) -> RunTicket:
        existing = self.by_idempotency.get(request.idempotency_key)
        if existing is not None:
            self.runs[existing]["request"] = self.runs[existing]["request"] or request
            return RunTicket(existing, self.url(existing))
        self.submitted.append(request)
        if request.kind == "archive":
            self.archive_whole_at_submit[request.name] = archive_is_whole(Path(request.source))
        run_id = str(uuid.uuid4())
        self.by_idempotency[request.idempotency_key] = run_id
        self.runs[run_id] = {"state": "scheduled", "outcome": None, "request": request}
        if self.serving:
            self.runs[run_id]["task"] = asyncio.create_task(self._run(run_id))
        return RunTicket(run_id, self.url(run_id))

    async def _run(self, run_id: str) -> None:
        run = self.runs[run_id]
        run["state"] = "active"
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
            run["outcome"] = self.behaviour(run["request"])
            run["state"] = "final"
        finally:
            self.active -= 1

    async def status(self, run_id: str) -> RunStatus:
        run = self.runs.get(run_id)
        if run is None:
            return RunStatus.MISSING
        return {"scheduled": RunStatus.SCHEDULED, "active": RunStatus.ACTIVE, "final": RunStatus.FINAL}[run["state"]]

    async def wait(self, run_id: str) -> RunOutcome:
        run = self.runs[run_id]
        while run["state"] != "final":
            await asyncio.sleep(0.01)
        return run["outcome"]

    async def mark_crashed(self, run_id: str, message: str) -> None:
        self.marked_crashed.append(run_id)
        run = self.runs.get(run_id)
        if run is not None:
            run["state"] = "final"
            run["outcome"] = RunOutcome("crashed", message=message)

    def url(self, run_id: str) -> str | None:
        return f"http://ui.invalid/runs/flow-run/{run_id}"
