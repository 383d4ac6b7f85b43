"""The drop-in folder without Prefect: items, settle detection, the journal, and the watcher
loop over a fake run backend (real files, real watchfiles, real threads)."""

from __future__ import annotations

import asyncio
import bz2
import json
import lzma
import os
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from dropin_helpers import (
    FakeBackend,
    read_journal,
    tar_gz_bytes,
    tar_gz_of,
    write_project,
    zip_slip,
)

from noa_core.dropin import (
    DropInBusy,
    DropInFolder,
    DropInService,
    Journal,
    RunOutcome,
    WatchOptions,
)
from noa_core.dropin.items import (
    Signature,
    archive_looks_complete,
    classify,
    content_key,
    is_ignored,
    is_temp_of,
    read_source_file,
    signature,
)
from noa_core.dropin.runs import RunRequest
from noa_core.dropin.settle import SettleTracker
from noa_core.errors import BadInput


# ------------------------------------------------------------------ items
@pytest.mark.parametrize("name, ignored", [
    ("proj", False), ("proj.tar.gz", False), (".proj", True), ("proj.tar.gz.part", True), ("x.zip.crdownload", True),
    ("x.tmp", True), ("notes.txt~", True), (".journal.jsonl", True),
])
def test_ignored_names(name: str, ignored: bool) -> None:
    assert is_ignored(name) is ignored


@pytest.mark.parametrize("temp, final, expected", [
    ("proj.tar.gz.part", "proj.tar.gz", True), (".proj.tar.gz", "proj.tar.gz", True),
    (".proj.tar.gz.Xy12Ab", "proj.tar.gz", True), ("x.crdownload", "x", True), (".proj", "proj", True),
    ("other.part", "proj", False), ("proj", "proj", False),
])
def test_temporary_name_pairs(temp: str, final: str, expected: bool) -> None:
    assert is_temp_of(temp, final) is expected


def test_classify(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "a.tar.gz").write_bytes(b"x")
    (tmp_path / "repo.url").write_text("https://example.org/x.git\n")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / "link").symlink_to("/etc")
    os.mkfifo(tmp_path / "fifo")
    assert classify(tmp_path / "d")[0] == "dir"
    assert classify(tmp_path / "a.tar.gz")[0] == "archive"
    assert classify(tmp_path / "repo.url")[0] == "source-file"
    kind, why = classify(tmp_path / "photo.jpg")
    assert kind == "unsupported" and "photo.jpg" in why
    kind, why = classify(tmp_path / "link")
    assert kind == "unsupported" and "symlink" in why
    assert classify(tmp_path / "fifo")[0] == "unsupported"


def test_content_key_is_content_not_name(tmp_path: Path) -> None:
    a = write_project(tmp_path / "a", "alpha")
    b = tmp_path / "b"
    os.system(f"cp -r {a} {b}")
    assert content_key(a, "dir") == content_key(b, "dir")
    os.utime(b / "pyproject.toml", (1, 1))  # mtimes do not matter
    assert content_key(a, "dir") == content_key(b, "dir")
    (b / "src" / "alpha" / "__init__.py").write_text("changed\n")
    assert content_key(a, "dir") != content_key(b, "dir")
    c = tmp_path / "c"
    os.system(f"cp -r {a} {c}")
    (c / "pyproject.toml").chmod(0o755)  # the executable bit is content
    assert content_key(a, "dir") != content_key(c, "dir")
    f1, f2 = tmp_path / "one.zip", tmp_path / "two.zip"
    f1.write_bytes(b"same")
    f2.write_bytes(b"same")
    assert content_key(f1, "archive") == content_key(f2, "archive")
    assert content_key(f1, "archive") != content_key(f1, "source-file")


def test_content_key_never_follows_links_or_opens_fifos(tmp_path: Path) -> None:
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    for d, target in ((d1, tmp_path / "t1"), (d2, tmp_path / "t2")):
        d.mkdir()
        (d / "f").write_text("x")
        os.mkfifo(d / "pipe")  # opening it would block forever
    (tmp_path / "t1").write_text("one")
    (tmp_path / "t2").write_text("two")
    (d1 / "ln").symlink_to("../target")
    (d2 / "ln").symlink_to("../target")
    assert content_key(d1, "dir") == content_key(d2, "dir")  # same link text, whatever it points at


def test_directory_signature_tracks_files_sizes_and_mtimes(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    assert signature(d).empty
    (d / "sub").mkdir()
    (d / "sub" / "a").write_text("123")
    s1 = signature(d)
    assert (s1.files, s1.size) == (1, 3)
    with open(d / "sub" / "a", "a") as fh:
        fh.write("4")
    assert signature(d).size == 4
    assert signature(tmp_path / "missing") is None


def test_archive_completeness(tmp_path: Path) -> None:
    data = tar_gz_bytes({f"f{i}.txt": os.urandom(2000) for i in range(20)}, "p")
    whole = tmp_path / "p.tar.gz"
    whole.write_bytes(data)
    assert archive_looks_complete(whole)
    for cut in (10, len(data) // 2, len(data) - 3):
        short = tmp_path / f"short{cut}.tar.gz"
        short.write_bytes(data[:cut])
        assert not archive_looks_complete(short), cut
    empty = tmp_path / "empty.tgz"
    empty.write_bytes(b"")
    assert not archive_looks_complete(empty)
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.txt", os.urandom(5000))
    assert archive_looks_complete(z)
    zshort = tmp_path / "zs.zip"
    zshort.write_bytes(z.read_bytes()[:-30])
    assert not archive_looks_complete(zshort)
    plain = tmp_path / "p.tar"
    with tarfile.open(plain, "w") as tf:
        tf.add(whole, arcname="inner.tar.gz")
    assert archive_looks_complete(plain)
    pshort = tmp_path / "ps.tar"
    pshort.write_bytes(plain.read_bytes()[:3000])
    assert not archive_looks_complete(pshort)
    raw = tarfile.open(plain).fileobj  # noqa: SIM115 - just to have tar bytes
    raw.close()
    tar_bytes = plain.read_bytes()
    for suffix, compress in ((".tar.bz2", bz2.compress), (".tar.xz", lzma.compress)):
        good, bad = tmp_path / f"g{suffix}", tmp_path / f"b{suffix}"
        blob = compress(tar_bytes)
        good.write_bytes(blob)
        bad.write_bytes(blob[: len(blob) // 2])
        assert archive_looks_complete(good) and not archive_looks_complete(bad), suffix
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not gzip at all" * 10)
    assert archive_looks_complete(garbage)  # corrupt, not short: the code drop refuses it with a reason


def test_source_files(tmp_path: Path) -> None:
    f = tmp_path / "x.url"
    f.write_text("# dropped again on Monday\n\n  https://github.com/pallets/click.git  \n")
    assert read_source_file(f) == "https://github.com/pallets/click.git"
    f.write_text("pypi:toolz==1.2.0\n")
    assert read_source_file(f) == "pypi:toolz==1.2.0"
    for text, culprit in (("", "no source"), ("a\nb\n", "2 sources"), ("relative/path\n", "absolute path"),
                          ("x" * 20000, "larger than")):
        f.write_text(text)
        with pytest.raises(BadInput, match=culprit):
            read_source_file(f)
    f.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(BadInput, match="UTF-8"):
        read_source_file(f)


# ------------------------------------------------------------------ settle detection
def sig(size: int, mtime: int = 1, inode: int = 7, files: int = 1) -> Signature:
    return Signature(files, size, mtime, inode)


def test_settle_waits_for_quiet() -> None:
    t = SettleTracker(settle=2.0, incomplete_grace=30.0)
    t.observe({"a": sig(10)}, now=0.0)
    assert t.ready(1.9) == []
    t.observe({"a": sig(20, 2)}, now=1.9)  # still growing
    assert t.ready(3.8) == []
    t.observe({"a": sig(20, 2)}, now=3.8)
    assert [r.name for r in t.ready(3.9)] == ["a"]
    assert not t.ready(3.9)[0].renamed
    t.observe({}, now=4.0)  # gone
    assert t.ready(10.0) == [] and t.pending() == []


def test_rename_into_place_is_complete_at_once() -> None:
    t = SettleTracker(settle=5.0, incomplete_grace=30.0)
    t.note_temporaries({42: "p.tar.gz.part"})
    t.observe({"p.tar.gz": sig(100, inode=42), "q.zip": sig(5, inode=43)}, now=0.0)
    ready = t.ready(0.0)
    assert [(r.name, r.renamed) for r in ready] == [("p.tar.gz", True)]
    # the same pairing from one batch of file events
    t.note_batch(deleted=[".r.tar.gz"], added=["r.tar.gz"], now=1.0)
    t.observe({"q.zip": sig(5, inode=43), "r.tar.gz": sig(9, inode=99)}, now=1.0)
    assert {r.name for r in t.ready(1.0)} == {"r.tar.gz"}
    # written to again after the rename: settles like anything else
    t.observe({"q.zip": sig(5, inode=43), "r.tar.gz": sig(10, inode=99)}, now=1.5)
    assert "r.tar.gz" not in {r.name for r in t.ready(2.0)}


def test_incomplete_archive_is_rechecked_then_forced_after_grace() -> None:
    t = SettleTracker(settle=1.0, incomplete_grace=10.0)
    t.observe({"a.zip": sig(10)}, now=0.0)
    assert [r.name for r in t.ready(1.0)] == ["a.zip"]
    t.looks_incomplete("a.zip", now=1.0)
    assert t.ready(1.5) == []
    assert [r.forced for r in t.ready(2.1)] == [False]  # re-checked every settle interval
    t.looks_incomplete("a.zip", now=2.1)
    assert [r.forced for r in t.ready(10.0)] == [True]
    t.observe({"a.zip": sig(11)}, now=10.5)  # it grew after all: back to normal settling
    assert t.ready(11.0) == [] and [r.forced for r in t.ready(11.6)] == [False]


# ------------------------------------------------------------------ journal
def test_journal_folds_persists_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.taken("k1", "a", "dir", 1)
        j.started("k1", 1, "run-1")
        j.taken("k2", "b.zip", "archive", 1)
        j.started("k2", 1, "run-2")
        j.interrupted("k2", "run-2", 2)
        j.started("k2", 2, "run-3")
        j.finished("k1", "processed", reason="ok", dest="processed/a", report_path="/r.json", retryable=False,
                   run_id="run-1")
    with open(path, "a") as fh:
        fh.write('{"t": "x", "key": "k3", "ev": "tak')  # power cut mid-write
    with Journal(path) as j:
        assert j.skipped_lines == 1
        k1, k2 = j.get("k1"), j.get("k2")
        assert k1.finished and k1.outcome == "processed" and k1.dest == "processed/a"
        assert (k2.state, k2.attempt, k2.interrupts, k2.run_id, k2.run_ids) == ("started", 2, 1, "run-3",
                                                                                ["run-2", "run-3"])
        assert [r.key for r in j.unfinished()] == ["k2"]
        j.released("k2", "run-3")
        assert j.get("k2").released
        j.resumed("k2", "run-3", 3)
        assert (j.get("k2").attempt, j.get("k2").released, j.get("k2").interrupts) == (3, False, 1)
        # a new drop of retryable content starts a new generation
        j.finished("k2", "failed", reason="net", dest="failed/b.zip", report_path=None, retryable=True, run_id=None)
        j.taken("k2", "b2.zip", "archive", 4)
        assert (j.get("k2").state, j.get("k2").interrupts, j.get("k2").outcome) == ("taken", 0, None)


def test_journal_compaction_keeps_state(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, compact_after=10) as j:
        for i in range(8):
            j.taken(f"k{i}", f"n{i}", "dir", 1)
            j.finished(f"k{i}", "processed", reason="", dest=f"processed/n{i}", report_path=None, retryable=False,
                       run_id=None)
        before = {k: (r.state, r.dest) for k, r in j.records.items()}
    assert len(path.read_text().splitlines()) < 16
    with Journal(path) as j:
        assert {k: (r.state, r.dest) for k, r in j.records.items()} == before


# ------------------------------------------------------------------ the watcher loop (fake backend)
def run_service(home: Path, backend: FakeBackend, **opts: object) -> tuple[list, list]:
    events: list = []
    options = WatchOptions(**{"settle": 0.3, "once": True, "use_ai": False, **opts})  # type: ignore[arg-type]
    service = DropInService(home, backend, options, on_event=events.append)
    results = asyncio.run(asyncio.wait_for(service.run(), timeout=60))
    return results, events


def test_items_are_filed_by_outcome(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    write_project(drop / "alpha", "alpha")
    tar_gz_of(write_project(tmp_path / "beta", "beta"), drop / "beta.tar.gz")
    write_project(drop / "failing-gamma", "gamma", failing=1)
    zip_slip(drop / "hostile-slip.zip")
    repo = write_project(tmp_path / "delta", "delta")
    (drop / "delta.url").write_text(f"{repo}\n")
    (drop / "bad.url").write_text("one\ntwo\n")
    (drop / "photo.jpg").write_bytes(b"\xff\xd8")
    (drop / "ignored.tar.gz.part").write_bytes(b"partial")
    (drop / ".hidden").mkdir()
    (drop / ".hidden" / "x").write_text("x")
    backend = FakeBackend(home)
    results, events = run_service(home, backend, concurrency=2)

    outcomes = {r.name: r.outcome for r in results}
    assert outcomes == {"alpha": "processed", "beta.tar.gz": "processed", "delta.url": "processed",
                        "failing-gamma": "failed", "hostile-slip.zip": "quarantined", "bad.url": "failed",
                        "photo.jpg": "failed"}
    # only real code drops became runs; the refused text file and the photo did not
    assert sorted(r.name for r in backend.submitted) == ["alpha", "beta.tar.gz", "delta.url", "failing-gamma",
                                                         "hostile-slip.zip"]
    assert next(r for r in backend.submitted if r.name == "delta.url").source == str(repo)
    assert backend.max_active <= 2
    # items moved with their reports / reasons next to them
    assert sorted(p.name for p in (drop / "processed").iterdir()) == sorted(
        [f"{n}{s}" for n in ("alpha", "beta.tar.gz", "delta.url") for s in ("", ".report.json", ".report.md")])
    rep = json.loads((drop / "processed" / "alpha.report.json").read_text())
    assert rep["project"] == "alpha" and rep["drop_in"]["outcome"] == "processed"
    assert rep["drop_in"]["flow_run_url"].startswith("http://ui.invalid/")
    assert (drop / "processed" / "alpha.report.md").read_text() == "# report alpha\n"
    assert (drop / "failed" / "failing-gamma.report.json").exists()
    assert "tests failed" in (drop / "failed" / "failing-gamma.reason.txt").read_text()
    assert "2 sources" in (drop / "failed" / "bad.url.reason.txt").read_text()
    assert "photo.jpg" in (drop / "failed" / "photo.jpg.reason.txt").read_text()
    reason = (drop / "quarantine" / "hostile-slip.zip.reason.txt").read_text()
    assert reason.startswith("quarantined: HostileInput:") and "escaped.txt" in reason
    # temporaries and dotfiles are left alone; nothing left in flight
    assert (drop / "ignored.tar.gz.part").exists() and (drop / ".hidden" / "x").exists()
    assert list((drop / ".work").iterdir()) == [] and list((drop / ".runs").iterdir()) == []
    kinds = [e.kind for e in events]
    assert kinds.count("taken") == 7 and kinds.count("running") == 5


def test_same_content_is_run_once_even_when_dropped_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    write_project(drop / "alpha", "alpha")
    os.system(f"cp -r {drop / 'alpha'} {drop / 'alpha-copy'}")  # same content, two names, at once
    backend = FakeBackend(home, delay=0.3)
    results, events = run_service(home, backend)
    assert len(backend.submitted) == 1 and len(results) == 1
    assert any(e.kind == "skipped" for e in events)
    # dropped again later, under a third name, by a new watcher: skipped, left where it is
    (taken,) = [p for p in (drop / "processed").iterdir() if p.is_dir()]  # whichever copy won
    os.system(f"cp -r {taken} {drop / 'alpha-again'}")
    backend2 = FakeBackend(home)
    results2, events2 = run_service(home, backend2)
    assert backend2.submitted == [] and results2 == []
    skipped = [e for e in events2 if e.kind == "skipped"]
    again = next(e for e in skipped if e.name == "alpha-again")
    assert "already processed" in again.message
    assert (drop / "alpha-again").is_dir()


def test_retryable_failure_runs_again_when_dropped_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    (drop / "net.url").write_text("pypi:toolz==1.2.0\n")
    flaky = FakeBackend(home, behaviour=lambda r: RunOutcome("failed", error_type="NetworkError",
                                                             message="PyPI unreachable"))
    results, _ = run_service(home, flaky)
    assert results[0].outcome == "failed"
    assert "retry: drop the same content again" in (drop / "failed" / "net.url.reason.txt").read_text()
    (drop / "net.url").write_text("pypi:toolz==1.2.0\n")
    results, _ = run_service(home, FakeBackend(home))
    assert [(r.outcome, r.attempt) for r in results] == [("processed", 2)]
    assert (drop / "processed" / "net.url").exists()


def test_concurrency_limit_is_honoured(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    for i in range(5):
        write_project(drop / f"p{i}", f"p{i}")
    backend = FakeBackend(home, delay=1.0)
    results, _ = run_service(home, backend, concurrency=3)
    assert len(results) == 5 and backend.max_active == 3
    backend = FakeBackend(home, delay=0.2)
    for i in range(3):
        write_project(drop / f"q{i}", f"q{i}")
    run_service(home, backend, concurrency=1)
    assert backend.max_active == 1


def test_half_written_archive_is_taken_only_when_complete(tmp_path: Path) -> None:
    """Written in chunks straight under its final name, with pauses longer than the settle
    interval: the end-of-archive check holds it back until it is whole."""
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    data = tar_gz_bytes({f"m{i}.bin": os.urandom(4000) for i in range(30)}, "slow")
    done = threading.Event()

    def writer() -> None:
        with open(drop / "slow.tar.gz", "wb") as fh:
            step = len(data) // 4
            for i in range(0, len(data), step):
                fh.write(data[i:i + step])
                fh.flush()
                time.sleep(0.5)  # longer than --settle 0.2
        done.set()

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(0.05)
    backend = FakeBackend(home)
    results, events = run_service(home, backend, settle=0.2)
    th.join()
    assert done.is_set()
    assert [r.name for r in results] == ["slow.tar.gz"] and results[0].outcome == "processed"
    assert backend.archive_whole_at_submit == {"slow.tar.gz": True}
    assert any(e.kind == "waiting" for e in events)


def test_rename_into_place_is_taken_without_waiting_to_settle(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    backend = FakeBackend(home)
    events: list = []
    service = DropInService(home, backend, WatchOptions(settle=30.0, once=False, use_ai=False, scan_interval=0.1),
                            on_event=events.append)

    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        await asyncio.sleep(0.5)
        part = drop / "quick.tar.gz.part"
        part.write_bytes(tar_gz_bytes({"a.py": b"a = 1\n"}, "quick"))
        t0 = time.monotonic()
        while "quick.tar.gz.part" not in service.tracker._temp_inodes.values():  # a scan saw the .part file
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.05)
        os.rename(part, drop / "quick.tar.gz")
        t0 = time.monotonic()
        while not service.results and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        service.request_stop()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 5  # not the 30 s settle interval

    asyncio.run(scenario())
    assert [r.name for r in service.results] == ["quick.tar.gz"]
    assert "renamed into place" in next(e.message for e in events if e.kind == "taken")


def test_one_watcher_per_folder(tmp_path: Path) -> None:
    folder = DropInFolder.for_home(tmp_path)
    with folder.lock(), pytest.raises(DropInBusy, match=str(os.getpid())), folder.lock():
        pass
    with folder.lock():  # released again
        pass


# ------------------------------------------------------------------ restarts
def taken_item(home: Path, name: str, project: str, journal: Journal, attempt: int = 1) -> str:
    folder = DropInFolder.for_home(home).ensure()
    src = write_project(folder.root / name, project)
    key = content_key(src, "dir")
    folder.take(name, key)
    journal.taken(key, name, "dir", attempt)
    return key


def request_for(home: Path, key: str, name: str, attempt: int) -> RunRequest:
    return RunRequest(key, attempt, name, "dir", str(DropInFolder.for_home(home).work_item(key, name)), str(home),
                      False, "AUTO")


def test_restart_recovers_every_unfinished_state(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = DropInFolder.for_home(home).ensure()
    backend = FakeBackend(home)
    with Journal(folder.journal) as j:
        # 1. its run was active when the watcher died: marked crashed, run once more
        k_active = taken_item(home, "active", "pa", j)
        active_run = backend.seed("active", idempotency_key=f"drop-in:{k_active}:1")
        j.started(k_active, 1, active_run)
        # 2. interrupted once already, and again: given up, filed as failed (retryable)
        k_twice = taken_item(home, "twice", "pb", j)
        j.started(k_twice, 1, backend.seed("final", RunOutcome("crashed")))
        j.interrupted(k_twice, None, 2)
        twice_run = backend.seed("active")
        j.started(k_twice, 2, twice_run)
        # 3. finished while no watcher ran: filed from its outcome, not run again
        k_done = taken_item(home, "done", "pc", j)
        done_outcome = backend.default_behaviour(request_for(home, k_done, "done", 1))
        j.started(k_done, 1, backend.seed("final", done_outcome))
        # 4. still scheduled: adopted, not created again
        k_sched = taken_item(home, "sched", "pd", j)
        sched_run = backend.seed("scheduled", request=request_for(home, k_sched, "sched", 1))
        j.started(k_sched, 1, sched_run)
        # 5. taken, and its run created, but the watcher died before journalling it
        k_taken = taken_item(home, "taken", "pe", j)
        taken_run = backend.seed("scheduled", idempotency_key=f"drop-in:{k_taken}:1",
                                 request=request_for(home, k_taken, "taken", 1))
        # 6. stopped on purpose (released) and cancelled: run again, not counted as an interruption
        k_rel = taken_item(home, "released", "pf", j)
        j.started(k_rel, 1, backend.seed("final", RunOutcome("cancelled", message="runner stopped")))
        j.released(k_rel, None)
        # 7. finished and journalled, but the move to processed/ did not happen
        k_move = taken_item(home, "moved", "pg", j)
        j.finished(k_move, "processed", reason="ok", dest="processed/moved", report_path=None, retryable=False,
                   run_id=None)
    # 8. moved into .work but the journal line never made it
    orphan = write_project(folder.work / "0123456789abcdef0123456789abcdef" / "orphan", "ph")
    assert orphan.is_dir()

    results, events = run_service(home, backend)
    by_name = {r.name: r for r in results}
    assert backend.marked_crashed == [active_run, twice_run]
    assert (by_name["active"].outcome, by_name["active"].attempt) == ("processed", 2)
    assert by_name["twice"].outcome == "failed" and "interrupted 2 times" in by_name["twice"].reason
    assert (by_name["done"].outcome, by_name["done"].run_id) == ("processed", j.get(k_done).run_id)
    assert by_name["sched"].run_id == sched_run and by_name["taken"].run_id == taken_run
    assert (by_name["released"].outcome, by_name["released"].attempt) == ("processed", 2)
    assert by_name["orphan"].outcome == "processed"
    # new runs only for the cut-off, released and orphan items
    assert sorted((r.name, r.attempt) for r in backend.submitted) == [("active", 2), ("orphan", 1), ("released", 2)]
    assert (folder.processed / "moved").is_dir()
    assert sorted(p.name for p in folder.processed.iterdir() if "." not in p.name) == [
        "active", "done", "moved", "orphan", "released", "sched", "taken"]
    assert (folder.failed / "twice").is_dir()
    assert list(folder.work.iterdir()) == []
    journal = read_journal(folder.root)
    assert [e["ev"] for e in journal if e["key"] == k_active] == ["taken", "started", "interrupted", "started",
                                                                  "finished"]
    assert sum(1 for e in events if e.kind == "interrupted") == 1


def test_stop_releases_in_flight_items_and_restart_runs_them_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    drop = home / "drop-in"
    drop.mkdir(parents=True)
    write_project(drop / "slowpoke", "slowpoke")
    backend = FakeBackend(home, delay=30)
    service = DropInService(home, backend, WatchOptions(settle=0.2, use_ai=False))

    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        while not backend.submitted:
            await asyncio.sleep(0.05)
        service.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert backend.stopped and service.results == []
    assert [e["ev"] for e in read_journal(drop)] == ["taken", "started", "released"]
    results, _ = run_service(home, backend=FakeBackend(home))
    assert [(r.name, r.outcome, r.attempt) for r in results] == [("slowpoke", "processed", 2)]
