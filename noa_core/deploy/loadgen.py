"""A small HTTP load generator for tests and benchmarks (run as its own process).

``python -m noa_core.deploy.loadgen --url http://127.0.0.1:P/hello --rps 100 --out F``
sends GETs at a steady rate from a few threads, one new connection per request, until
SIGTERM/SIGINT; then writes one line per request to ``F``: ``epoch_s status ms`` (status
0 = connection error or timeout). :func:`read_results` reads them back.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class Hit:
    t: float
    status: int
    ms: float

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


def read_results(path: Path) -> list[Hit]:
    hits = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            hits.append(Hit(float(parts[0]), int(parts[1]), float(parts[2])))
    return sorted(hits, key=lambda h: h.t)


def run(url: str, rps: float, threads: int, out: Path, timeout: float) -> None:
    u = urlparse(url)
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, (u.path or "/") + (f"?{u.query}" if u.query else "")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    hits: list[tuple[float, int, float]] = []
    period = threads / rps

    def worker(k: int) -> None:
        nxt = time.monotonic() + k * period / threads
        while not stop.is_set():
            now = time.monotonic()
            if now < nxt:
                stop.wait(nxt - now)
                continue
            nxt += period
            t = time.time()
            t0 = time.monotonic()
            status = 0
            try:
                c = http.client.HTTPConnection(host, port, timeout=timeout)
                c.request("GET", path, headers={"Connection": "close"})
                r = c.getresponse()
                r.read()
                status = r.status
                c.close()
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                hits.append((t, status, (time.monotonic() - t0) * 1000))

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    Path(out).with_suffix(".started").write_text(str(time.time()))
    stop.wait()
    for t in ts:
        t.join(timeout + 1)
    with lock:
        Path(out).write_text("".join(f"{t:.6f} {s} {ms:.3f}\n" for t, s, ms in hits))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noa_core.deploy.loadgen")
    ap.add_argument("--url", required=True)
    ap.add_argument("--rps", type=float, default=100.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    run(a.url, a.rps, a.threads, a.out, a.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
