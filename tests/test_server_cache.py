"""The read flow's cache (memory and Redis, both for real) and the write flow's atomicity: a write that
fails part way leaves neither a stale cache entry nor a half-written row."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from noa_core.server.app import create_app
from noa_core.storage.cache import MemoryCache, RedisCache
from tests.server_helpers import bearer, settings_for, tokens

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip(namespace: str) -> RedisCache:
    cache = RedisCache(REDIS_URL, namespace=namespace)
    if not cache.ping():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return cache


@pytest.fixture(params=["memory", "redis"])
def cache(request):
    if request.param == "memory":
        c = MemoryCache(default_ttl=30)
    else:
        c = _redis_or_skip(f"noa-test-{uuid.uuid4().hex[:8]}:")
    yield c
    c.delete_prefix("")
    c.close()


def test_cache_port(cache):
    assert cache.get("a") is None
    cache.set("a", b"1")
    cache.set("v1:drops:1", b"x")
    cache.set("v1:drops:2", b"y")
    cache.set("short", b"z", ttl=0.05)
    assert cache.get("a") == b"1"
    time.sleep(0.15)
    assert cache.get("short") is None
    cache.delete_prefix("v1:drops:")
    assert cache.get("v1:drops:1") is None and cache.get("v1:drops:2") is None
    cache.delete("a")
    assert cache.get("a") is None
    s = cache.stats()
    assert (s.hits, s.misses) == (1, 5) and s.backend == cache.backend


def test_memory_cache_is_bounded():
    c = MemoryCache(max_entries=3)
    for i in range(5):
        c.set(str(i), b"v")
    assert [c.get(str(i)) for i in range(5)] == [None, None, b"v", b"v", b"v"]


def _app(tmp_path, cache, **kw):
    kw.setdefault("schedule_backup", None)
    return create_app(settings_for(tmp_path), cache=cache, prefect_events=False, **kw)


def test_cache_aside_reads_hit_and_miss_in_metrics(tmp_path, cache):
    app = _app(tmp_path, cache, record_change=None)
    toks = tokens(app)
    with TestClient(app) as client:
        h = bearer(toks["write"])
        assert client.get("/v1/projects", headers=h).headers["x-cache"] == "miss"
        assert client.get("/v1/projects", headers=h).headers["x-cache"] == "hit"
        assert client.post("/v1/projects", headers=h, json={"name": "alpha"}).status_code == 201
        r = client.get("/v1/projects", headers=h)  # the write invalidated the list
        assert r.headers["x-cache"] == "miss" and [p["name"] for p in r.json()["items"]] == ["alpha"]
        assert client.get("/v1/projects/alpha", headers=h).headers["x-cache"] == "miss"
        assert client.get("/v1/projects/alpha", headers=h).headers["x-cache"] == "hit"
        metrics = client.get("/metrics").text
        assert f'noa_cache_hits_total{{backend="{cache.backend}"}} 2.0' in metrics
        assert f'noa_cache_misses_total{{backend="{cache.backend}"}} 3.0' in metrics


def _rows(app, table):
    with app.state.noa.engine.connect() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar()


def test_failing_change_log_leaves_no_row_and_no_stale_cache_fake(tmp_path, cache):
    """A fake change log that fails: the write is undone (row, project), and the cache holds no stale list."""
    calls = []

    def failing_record_change(settings, kind, subject, payload):
        calls.append(subject)
        raise RuntimeError("CL tree disk full")

    app = _app(tmp_path, cache, record_change=failing_record_change)
    toks = tokens(app)
    with TestClient(app) as client:
        h = bearer(toks["write"])
        assert client.get("/v1/projects", headers=h).json()["items"] == []  # cached: empty list
        r = client.post("/v1/projects", headers=h, json={"name": "beta", "root_commits": ["a" * 40]})
        assert r.status_code == 503 and "write undone: change log" in r.json()["detail"]
        assert calls == ["beta"]
        assert _rows(app, "api_writes") == 0 and _rows(app, "projects") == 0
        assert cache.get("v1:projects") is None and cache.get("v1:project:beta") is None
        assert client.get("/v1/projects", headers=h).json()["items"] == []
        assert client.get("/v1/projects/beta", headers=h).status_code == 404


def test_a_change_log_entry_the_database_refuses_leaves_nothing_written(tmp_path, cache):
    """The real CL tree, refused by the database itself: the request row, the project and the entry
    were one transaction, so none of them stays; the next write after the fault goes through."""
    from noa_core.cltree import change_entries, verify

    settings = settings_for(tmp_path)
    app = _app(tmp_path, cache)
    toks = tokens(app)
    with TestClient(app) as client:
        h = bearer(toks["write"])
        assert client.post("/v1/projects", headers=h, json={"name": "first"}).status_code == 201
        assert client.get("/v1/projects", headers=h).headers["x-cache"] == "miss"  # now cached
        with app.state.noa.engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER full BEFORE INSERT ON cltree_entries "
                              "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        r = client.post("/v1/projects", headers=h, json={"name": "second"})
        assert r.status_code == 503 and "write undone: change log" in r.json()["detail"]
        assert "disk full" in r.json()["detail"]
        assert _rows(app, "api_writes") == 1 and _rows(app, "projects") == 1 and _rows(app, "cltree_entries") == 1
        assert cache.get("v1:projects") is None
        assert [p["name"] for p in client.get("/v1/projects", headers=h).json()["items"]] == ["first"]
        with app.state.noa.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER full"))
        assert client.post("/v1/projects", headers=h, json={"name": "second"}).status_code == 201
    assert [e.subject for e in change_entries(settings)] == ["first", "second"]
    assert verify(settings).ok


def test_failing_change_log_restores_an_updated_project_fake(tmp_path, cache):
    state = {"fail": False}

    def record_change(settings, kind, subject, payload):
        if state["fail"]:
            raise RuntimeError("boom")

    app = _app(tmp_path, cache, record_change=record_change)
    toks = tokens(app)
    with TestClient(app) as client:
        h = bearer(toks["write"])
        assert client.post("/v1/projects", headers=h, json={"name": "gamma", "root_commits": ["a" * 40]}).status_code == 201
        assert client.get("/v1/projects/gamma", headers=h).json()["project"]["root_commits"] == ["a" * 40]
        state["fail"] = True
        r = client.post("/v1/projects", headers=h, json={"name": "gamma", "root_commits": ["b" * 40]})
        assert r.status_code == 503
        assert client.get("/v1/projects/gamma", headers=h).json()["project"]["root_commits"] == ["a" * 40]
        assert _rows(app, "api_writes") == 1


def test_failing_registry_update_rolls_back_the_request_row(tmp_path, cache):
    """The db write and the registry update are one transaction: a unique-name clash inside it rolls both back."""
    app = _app(tmp_path, cache, record_change=None)
    toks = tokens(app)
    from noa_core.server.writes import WriteFailed, WriteRequest

    def broken_update(conn):
        conn.execute(text("insert into projects (name, root_commits, created) values ('delta', '[]', '2026-01-01')"))
        conn.execute(text("insert into projects (name, root_commits, created) values ('delta', '[]', '2026-01-01')"))

    with TestClient(app) as client:
        h = bearer(toks["read"])
        client.get("/v1/projects", headers=h)
        assert cache.get("v1:projects") is not None
        req = WriteRequest(kind="project", subject="delta", params={}, token_name="test", registry_update=broken_update,
                           invalidate_keys=("v1:projects",))
        with pytest.raises(WriteFailed, match="db write"):
            client.portal.call(app.state.noa.writes.run, req)
        assert _rows(app, "api_writes") == 0 and _rows(app, "projects") == 0
        assert cache.get("v1:projects") is None


def test_successful_write_records_change_and_triggers_backup(tmp_path, cache):
    from noa_core.cltree import change_entries

    backups = []

    async def schedule_backup(settings):
        backups.append(str(settings.home))

    settings = settings_for(tmp_path)
    app = create_app(settings, cache=cache, prefect_events=False, schedule_backup=schedule_backup)
    toks = tokens(app)
    with TestClient(app) as client:
        r = client.post("/v1/projects", headers=bearer(toks["write"]), json={"name": "epsilon"})
        assert r.status_code == 201
        steps = r.json()["steps"]
        assert steps == {"validation": "ok", "db_write": "ok", "cache_invalidation": "ok", "registry_update": "ok",
                         "change_log": "ok", "backup": "scheduled"}
    entries = change_entries(settings, kind="registry", subject="epsilon")
    assert len(entries) == 1 and entries[0].payload["write_id"] == r.json()["id"]
    assert r.json()["change_id"] == entries[0].id
    assert backups == [str(settings.home)]
