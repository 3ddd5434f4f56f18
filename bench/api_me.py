"""Requests/s and p50/p99 latency of `GET /api/v1/me` (API-key auth + one SELECT) under the
production server command, gunicorn with 2 workers: sync workers, then gthread workers.

    make bench                                   # embedded PostgreSQL/Redis unless the URLs are set
    python bench/api_me.py [--seconds 15] [--clients 32]   # with DATABASE_URL and REDIS_URL set

The load comes from a separate process (asyncio + httpx, one keep-alive connection per client) on
loopback and shares the machine's cores with the server. Each server gets a warm-up, then the
measured time in rounds; requests/s is the median of the rounds, p50/p99 are over every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVERS = {
    "sync": ["--workers", "2"],
    "gthread": ["--workers", "2", "--worker-class", "gthread", "--threads", "4"],
}


@dataclass
class LoadResult:
    latencies: list[float]  # seconds, of the requests answered 200
    errors: int  # other answers and transport errors
    elapsed: float  # seconds
    cpu: float  # CPU seconds the load generator used


@dataclass
class ServerResult:
    server: str
    rates: list[float]  # requests/s of each round
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    client_cpu: float  # share of one core the load generator used

    @property
    def rps(self) -> float:
        return statistics.median(self.rates)


# --- The load generator (runs in its own process: --load) --------------------------------------


async def one_client(client: httpx.AsyncClient, url: str, deadline: float, latencies: list[float]) -> int:
    errors = 0
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            response = await client.get(url)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1
    return errors


async def load(url: str, key: str, clients: int, seconds: float) -> LoadResult:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(headers=headers, limits=limits, timeout=30) for _ in range(clients)]
    latencies: list[float] = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        errors = await asyncio.gather(*(one_client(c, url, started + seconds, latencies) for c in pool))
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return LoadResult(latencies=latencies, errors=sum(errors), elapsed=elapsed, cpu=cpu)


def run_load(url: str, key: str, clients: int, seconds: float) -> LoadResult:
    """One bounded load in a child process, so that client and server do not share a GIL."""
    cmd = [PYTHON, __file__, "--load", url, "--key", key, "--clients", str(clients), "--seconds", str(seconds)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 120)
    return LoadResult(**json.loads(result.stdout))


# --- The server under test ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def wait_until_serving(base: str, key: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            response = httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            if response.status_code == 200:
                return
            sys.exit(f"/api/v1/me answered {response.status_code}: {response.text[:300]}")
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"gunicorn did not serve within 60 s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of the master and its workers
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_server(name: str, env: dict[str, str], key: str, args: argparse.Namespace) -> ServerResult:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [PYTHON, "-m", "gunicorn", "config.wsgi:application", *SERVERS[name], "--bind", f"127.0.0.1:{port}"]
    log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{name}.log"
    print(f"{name}: {' '.join(['gunicorn', *cmd[3:]])}", flush=True)
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(base, key, proc, log)
        run_load(base + "/api/v1/me", key, args.clients, args.warmup)
        rounds = [
            run_load(base + "/api/v1/me", key, args.clients, args.seconds / args.rounds) for _ in range(args.rounds)
        ]
    finally:
        stop(proc)
    latencies = sorted(latency for r in rounds for latency in r.latencies)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return ServerResult(
        server=name,
        rates=[len(r.latencies) / r.elapsed for r in rounds],
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        requests=len(latencies),
        errors=sum(r.errors for r in rounds),
        client_cpu=sum(r.cpu for r in rounds) / sum(r.elapsed for r in rounds),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15, help="measured time per server, split into rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, of: {', '.join(SERVERS)}")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # internal: be the load generator
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.load:
        coroutine = load(args.load, args.key, args.clients, args.seconds)
        try:
            import uvloop  # uvicorn[standard] brings it: a cheaper event loop leaves more CPU to the server
        except ImportError:
            result = asyncio.run(coroutine)
        else:
            result = uvloop.run(coroutine)
        print(json.dumps(asdict(result)))
        return

    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run `make bench`, which starts embedded ones if needed.")
    env = {
        **os.environ,
        "DEBUG": "false",  # production settings: no debug toolbar of queries, templates cached
        "SECRET_KEY": "bench-" + "x" * 50,
        "STATIC_USE_FINDERS": "true",  # no collectstatic needed
        "API_THROTTLE_RATE": "1000000/min",  # measure the view, not the throttle's 429s
        "LOG_LEVEL": "WARNING",
    }
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "seed_demo")
    key = manage(env, "apikey", "create", "--tenant", "acme", "--name", "bench", "--scopes", "admin", "--replace")
    key = key.strip().splitlines()[-1]

    results = [bench_server(name, env, key, args) for name in args.servers.split(",")]
    print()
    print(f"GET /api/v1/me, {args.clients} concurrent clients, {args.rounds} x {args.seconds / args.rounds:.0f} s")
    print(f"{'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}  rounds req/s")
    for r in results:
        rates = ", ".join(f"{rate:.0f}" for rate in r.rates)
        print(
            f"{r.server:<10} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>7} {r.requests:>9}  "
            f"{rates}   (load generator: {r.client_cpu:.0%} of a core)"
        )


if __name__ == "__main__":
    main()
