#!/usr/bin/env python
"""NOA API latency under a fixed request rate, against a bare FastAPI app answering the same endpoint.

Three processes on 127.0.0.1: the NOA API (``create_app``: auth, rate limit, body limit, span,
metrics, cache-aside read / full write flow) on uvicorn; a bare FastAPI app with the same paths
(the read returns the same JSON bytes; the write validates the same pydantic body and answers 201);
and the load generator (this script with ``--client``): an open-loop client on uvloop with keep-alive
connections that sends request i at t0 + i/rate and measures latency from that scheduled time
(so a stalled server cannot hide its queue: no coordinated omission).

Cases: cached read ``GET /v1/projects`` and write ``POST /v1/projects`` (a new project each time:
validation -> db write -> cache invalidation -> registry update -> CL tree entry), at 200 and 500
requests/s, NOA and bare interleaved in the same run. Prints p50, p99, errors and achieved rate per
case, the p99 ratio NOA/bare, and the load average. Goal (issue 7): cached read p99 < 10 ms at
500 requests/s, zero errors.

Usage: bench/bench_server.py [--seconds 5] [--rates 200,500] [--connections 32] [--json]
"""



import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------ servers
def _noa_server(home: str, port: int) -> None:
    import uvicorn

    from noa_core.config import NoaSettings
    from noa_core.server.app import create_app
    from noa_core.server.ratelimit import RateLimit

    # as `noa server` builds it (gc_freeze), with a rate limit above the offered load and no backups
    app = create_app(NoaSettings(home=Path(home)), rate_limit=RateLimit(100_000, 100_000), schedule_backup=None,
                     prefect_events=False, gc_freeze=True)
    token, _ = app.state.noa.tokens.create("bench", "write")
    Path(home, "token").write_text(token)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _bare_server(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI, Response

    from noa_core.server.schemas import ProjectCreate

    app = FastAPI()
    body = b'{"items":[{"id":1,"name":"seed","root_commits":[],"created":"2026-11-25T00:00:00+00:00"}],"total":1}'

    @app.get("/v1/projects")
    async def projects() -> Response:
        return Response(body, media_type="application/json")

    @app.post("/v1/projects", status_code=201)
    async def create(p: ProjectCreate) -> dict[str, str]:
        return {"id": "bare", "kind": "project", "subject": p.name}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------ client
def _request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _load(port: int, token: str, case: str, rate: float, seconds: float, connections: int) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    next_i = 0
    t0 = time.perf_counter() + 0.2
    run_tag = os.urandom(3).hex()

    def payload(i: int) -> bytes:
        if case == "read":
            return _request("GET", "/v1/projects", token)
        body = json.dumps({"name": f"bench-{run_tag}-{i}"}).encode()
        return _request("POST", "/v1/projects", token, body)

    async def worker() -> None:
        nonlocal next_i, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                i = next_i
                if i >= total:
                    return
                next_i += 1
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    writer.write(payload(i))
                    status = await asyncio.wait_for(_read_response(reader), timeout=5)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - due)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - start - 0.2
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else float("nan")

    return {"case": case, "rate": rate, "sent": total, "errors": errors, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(1000 * lat[-1], 3) if lat else None,
            "mean_ms": round(1000 * statistics.fmean(lat), 3) if lat else None,
            "achieved_rps": round(len(lat) / wall, 1) if wall > 0 else None}


def _client(port: int, token: str, case: str, rate: float, seconds: float, connections: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_load(port, token, case, rate, seconds, connections))))


# ------------------------------------------------------------------------------ driver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/projects", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rates", default="200,500")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--client", nargs=5, metavar=("PORT", "TOKEN", "CASE", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        port, token, case, rate, seconds = args.client
        _client(int(port), token, case, float(rate), float(seconds), args.connections)
        return
    if args.serve:
        if args.serve[0] == "noa":
            _noa_server(args.serve[1], int(args.serve[2]))
        else:
            _bare_server(int(args.serve[1]))
        return

    rates = [float(r) for r in args.rates.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="noa-bench-server-") as tmp:
        home = Path(tmp) / "noa"
        noa_port, bare_port = _free_port(), _free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen([PY, __file__, "--serve", "noa", str(home), str(noa_port)], env=env),
                 subprocess.Popen([PY, __file__, "--serve", "bare", str(bare_port)], env=env)]
        try:
            _wait(noa_port)
            _wait(bare_port)
            token = (home / "token").read_text()
            import httpx

            httpx.post(f"http://127.0.0.1:{noa_port}/v1/projects", json={"name": "seed"},
                       headers={"Authorization": f"Bearer {token}"})
            results = []
            for case in ("read", "write"):
                for rate in rates:
                    for target, port in (("noa", noa_port), ("bare", bare_port)):
                        # warm-up (fills the cache, opens connections), then the measured run
                        for secs, keep in ((1.0, False), (args.seconds, True)):
                            out = subprocess.run([PY, __file__, "--connections", str(args.connections), "--client",
                                                  str(port), token, case, str(rate), str(secs)],
                                                 capture_output=True, text=True, env=env, timeout=secs * 20 + 60)
                            if out.returncode != 0:
                                raise SystemExit(out.stderr[-2000:])
                            if keep:
                                results.append({"target": target, **json.loads(out.stdout)})
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    load_after = os.getloadavg()
    summary = {"results": results, "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(), "seconds": args.seconds,
               "connections": args.connections}
    goal = [r for r in results if r["target"] == "noa" and r["case"] == "read" and r["rate"] == 500]
    summary["goal_read_p99_under_10ms_at_500"] = bool(goal and goal[0]["p99_ms"] < 10 and goal[0]["errors"] == 0)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{'case':<6} {'rate':>5} {'target':<5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6} {'rps':>7}")
    for r in results:
        print(f"{r['case']:<6} {r['rate']:>5.0f} {r['target']:<5} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['max_ms']:>8.1f} {r['errors']:>6} {r['achieved_rps']:>7.1f}")
    for case in ("read", "write"):
        for rate in rates:
            pair = {r["target"]: r for r in results if r["case"] == case and r["rate"] == rate}
            if "noa" in pair and "bare" in pair and pair["bare"]["p99_ms"]:
                print(f"{case} @ {rate:.0f}/s: NOA p99 / bare p99 = {pair['noa']['p99_ms'] / pair['bare']['p99_ms']:.2f}x")
    print(f"load average before {summary['loadavg_before']}, after {summary['loadavg_after']} "
          f"({summary['cpus']} CPUs); goal met: {summary['goal_read_p99_under_10ms_at_500']}")


if __name__ == "__main__":
    main()
