"""Budget reservations under load: reserve+settle pairs per second and p50/p99 latency of a pair,
over REST against the production server command and, in the same run, two references: the
floor, PostgreSQL's own conditional update (the least any exact, atomic reservation can cost),
and `GET /api/v1/me` (API-key authentication, the throttle and one SELECT) on the same server
with the same clients, which is what the framework around a reservation costs.

    make bench
    python scripts/devenv.py exec -- .venv/bin/python bench/budgets.py
    python bench/budgets.py [--clients 1,8,32,64] [--seconds 6] [--targets floor,me,rest]   # URLs set

Two scenarios, each at every concurrency:
- hot:  every client reserves against one budget (one counter row: every pair contends on it);
- many: each client is its own end user under a per-end-user budget (one counter row each).

A pair over REST is `POST /api/v1/reservations` (201) then `POST /api/v1/reservations/{id}/settle`
(200), through gunicorn with `DEBUG=false` and a throttle that never refuses. A `me` request is
`GET /api/v1/me` (200) with the same key, server and clients. A floor pair is two autocommit
statements on a table in a scratch schema, one row per counter:

    UPDATE counters SET reserved = reserved + x WHERE id = $1 AND settled + reserved + x <= "limit"
    UPDATE counters SET reserved = reserved - x, settled = settled + y WHERE id = $1

The load comes from a separate process (asyncio: httpx, or psycopg's async connections; one
connection per client) on loopback, sharing the machine's cores with the server and PostgreSQL.
Each cell gets a warm-up, then rounds; pairs/s is the median of the rounds, p50/p99 are over
every pair of the rounds. The 1-minute load average is printed with each cell, and the CPU a pair
(or `me` request) cost over the rounds in the server's processes, in the database's backends for
the bench database and in the load generator (from /proc): on a machine whose cores are shared by
all three, pairs/s against `me` requests/s is bounded by those totals.

SQL statements per pair are counted in this process, through Django's test client on the same
tenant, key and budgets (every statement Django sends, BEGIN and COMMIT included), after a
warm-up of a few pairs. The budget tables are vacuumed and analyzed before the server starts.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER_ARGS = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
SCHEMA = "bench_budgets"
# Worst-case cost reserved and actual cost settled by a floor pair (micro-USD); the REST pairs
# reserve 200 input + 200 max output tokens of the bench tenant's model and settle 200 + 100.
FLOOR_RESERVE, FLOOR_SETTLE = 1_000, 600
HUGE_LIMIT = 10**15  # no pair is ever refused: we measure admission, not refusal


@dataclass
class LoadResult:
    latencies: list[float]  # seconds, of the pairs (or `me` requests) that completed
    errors: int  # refused or failed pairs, and transport errors
    elapsed: float  # seconds
    cpu: float  # CPU seconds the load generator used
    first_error: str = ""


@dataclass
class Cell:
    target: str  # "rest", "me" or "floor"
    scenario: str  # "hot" or "many"
    clients: int
    rates: list[float]  # pairs/s (requests/s for `me`) of each round
    p50_ms: float
    p99_ms: float
    pairs: int
    errors: int
    client_cpu: float
    first_error: str
    load: float  # the machine's 1-minute load average when the cell ended
    server_ms: float | None = None  # CPU of the server's processes a pair (or request), ms
    database_ms: float | None = None  # CPU of the database's backends for the bench database a pair, ms
    client_ms: float = 0.0  # CPU of the load generator a pair, ms

    @property
    def pps(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0


# --- The load generator (runs in its own process: --load) --------------------------------------


async def rest_client(
    client: httpx.AsyncClient, base: str, end_user: str | None, deadline: float, out: list[float], errors: list[str]
) -> None:
    body: dict[str, object] = {"model": "default", "input_tokens": 200, "max_output_tokens": 200}
    if end_user:
        body["end_user_id"] = end_user
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            reserved = await client.post(base + "/api/v1/reservations", json=body)
            if reserved.status_code != 201:
                errors.append(f"reserve {reserved.status_code}: {reserved.text[:300]}")
                continue
            pk = reserved.json()["id"]
            settled = await client.post(
                f"{base}/api/v1/reservations/{pk}/settle", json={"input_tokens": 200, "output_tokens": 100}
            )
            if settled.status_code != 200:
                errors.append(f"settle {settled.status_code}: {settled.text[:300]}")
                continue
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        out.append(time.perf_counter() - start)


async def me_client(client: httpx.AsyncClient, base: str, deadline: float, out: list[float], errors: list[str]) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            response = await client.get(base + "/api/v1/me")
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if response.status_code != 200:
            errors.append(f"me {response.status_code}: {response.text[:300]}")
            continue
        out.append(time.perf_counter() - start)


async def floor_client(dsn: str, counter: int, deadline: float, out: list[float], errors: list[str]) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            cursor = await conn.execute(
                "UPDATE counters SET reserved = reserved + %(x)s"
                ' WHERE id = %(id)s AND settled + reserved + %(x)s <= "limit"',
                {"x": FLOOR_RESERVE, "id": counter},
            )
            if cursor.rowcount != 1:
                errors.append(f"floor reservation refused on counter {counter}")
                continue
            await conn.execute(
                "UPDATE counters SET reserved = reserved - %(x)s, settled = settled + %(y)s WHERE id = %(id)s",
                {"x": FLOOR_RESERVE, "y": FLOOR_SETTLE, "id": counter},
            )
            out.append(time.perf_counter() - start)


async def load(args: argparse.Namespace) -> LoadResult:
    latencies: list[float] = []
    errors: list[str] = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    if args.load in ("rest", "me"):
        headers = {"Authorization": f"Bearer {args.key}"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        pool = [httpx.AsyncClient(headers=headers, limits=limits, timeout=30) for _ in range(args.clients)]
        started = time.perf_counter()
        deadline = started + args.seconds
        try:
            if args.load == "me":
                await asyncio.gather(*(me_client(c, args.base, deadline, latencies, errors) for c in pool))
            else:
                await asyncio.gather(
                    *(
                        rest_client(
                            c,
                            args.base,
                            f"bench-user-{i}" if args.scenario == "many" else None,
                            deadline,
                            latencies,
                            errors,
                        )
                        for i, c in enumerate(pool)
                    )
                )
        finally:
            await asyncio.gather(*(c.aclose() for c in pool))
    else:
        # Connections are opened before the clock starts, like the HTTP clients' pools.
        started = time.perf_counter()
        await asyncio.gather(
            *(
                floor_client(
                    args.dsn, i + 1 if args.scenario == "many" else 1, started + args.seconds, latencies, errors
                )
                for i in range(args.clients)
            )
        )
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return LoadResult(
        latencies=latencies, errors=len(errors), elapsed=elapsed, cpu=cpu, first_error=errors[0] if errors else ""
    )


def run_load(target: str, scenario: str, clients: int, seconds: float, *, base: str, key: str, dsn: str) -> LoadResult:
    """One bounded load in a child process, so that the load and the bench do not share a GIL."""
    cmd = [PYTHON, __file__, "--load", target, "--scenario", scenario, "--clients", str(clients)]
    cmd += ["--seconds", str(seconds), "--base", base, "--key", key, "--dsn", dsn]
    # The result goes through a file: tens of thousands of latencies are too much for a pipe's line.
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        result = subprocess.run(
            [*cmd, "--out", out.name], capture_output=True, text=True, check=False, timeout=seconds + 120
        )
        if result.returncode != 0:
            sys.exit(f"load generator failed:\n{result.stderr[-2000:]}")
        return LoadResult(**json.load(out))


def measure(
    target: str, scenario: str, clients: int, args: argparse.Namespace, cpu: CpuWatch | None = None, **where: str
) -> Cell:
    run_load(target, scenario, clients, args.warmup, **where)
    rounds = []
    server = database = 0.0
    for _ in range(args.rounds):
        before = cpu.read() if cpu else ({}, {})
        rounds.append(run_load(target, scenario, clients, args.seconds / args.rounds, **where))
        after = cpu.read() if cpu else ({}, {})
        server += CpuWatch.used(before[0], after[0])
        database += CpuWatch.used(before[1], after[1])
    latencies = sorted(latency for r in rounds for latency in r.latencies)
    done = max(len(latencies), 1)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Cell(
        target=target,
        scenario=scenario,
        clients=clients,
        rates=[len(r.latencies) / r.elapsed for r in rounds],
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        pairs=len(latencies),
        errors=sum(r.errors for r in rounds),
        client_cpu=sum(r.cpu for r in rounds) / sum(r.elapsed for r in rounds),
        first_error=next((r.first_error for r in rounds if r.first_error), ""),
        load=os.getloadavg()[0],
        server_ms=server / done * 1000 if cpu and target != "floor" else None,
        database_ms=database / done * 1000 if cpu and target != "floor" else None,
        client_ms=sum(r.cpu for r in rounds) / done * 1000,
    )


class CpuWatch:
    """CPU seconds used by the server (gunicorn's master and workers) and by the database's backends
    serving the bench database between two readings, from /proc (Linux, with PostgreSQL on this
    machine; elsewhere both read 0). Backends are found by their process title (`postgres: … <user>
    <database> <client> …`). A process that exits between the readings takes its CPU since the
    first with it: the server's connections persist (CONN_MAX_AGE), so its targets' database figure
    counts every statement, while the floor's connections close with each round (left out)."""

    def __init__(self, server_pid: int, database: str) -> None:
        self.server_pid = server_pid
        self.database = database
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _cpu(self, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def _tree(self, pid: int) -> list[int]:
        found = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in children:
                found += self._tree(int(child))
        return found

    def _backends(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres: ") and f" {self.database} " in title:
                found.append(int(entry.name))
        return found

    def _read(self, pids: list[int]) -> dict[int, float]:
        return {pid: cpu for pid in pids if (cpu := self._cpu(pid)) is not None}

    def read(self) -> tuple[dict[int, float], dict[int, float]]:
        if not Path("/proc/self/stat").exists():
            return {}, {}
        return self._read(self._tree(self.server_pid)), self._read(self._backends())

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        """CPU seconds between the readings, of the processes alive at the second (a process born
        in between counts from its start)."""
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- The floor's scratch table -----------------------------------------------------------------


def floor_setup(dsn: str, counters: int) -> None:
    """A scratch schema with `counters` rows, recreated each run so every run starts alike."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f'CREATE TABLE {SCHEMA}.counters (id bigint PRIMARY KEY, "limit" bigint NOT NULL,'
            " reserved bigint NOT NULL DEFAULT 0, settled bigint NOT NULL DEFAULT 0)"
        )
        conn.execute(
            f'INSERT INTO {SCHEMA}.counters (id, "limit") SELECT g, %s FROM generate_series(1, %s) g',  # noqa: S608
            [HUGE_LIMIT, counters],
        )


def vacuum(dsn: str) -> None:
    """VACUUM ANALYZE the budget tables the bench writes, as autovacuum would keep them: they grow
    by thousands of rows a run, and a database with autovacuum off (like this machine's) would
    otherwise plan on the statistics of an empty table and scan the dead rows of earlier runs."""
    import psycopg

    tables = ["budget", "budgetcounter", "reservation", "reservationline", "ledgerentry", "budgetalert"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) " + ", ".join(f"budgets_{name}" for name in tables))


def floor_teardown(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


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


def start_server(env: dict[str, str], key: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [PYTHON, "-m", "gunicorn", "config.wsgi:application", *SERVER_ARGS, "--bind", f"127.0.0.1:{port}"]
    log = Path(tempfile.gettempdir()) / "bench-gunicorn-budgets.log"
    print(f"server: {' '.join(['gunicorn', *cmd[3:]])}", flush=True)
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            response = httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            if response.status_code == 200:
                return proc, base, log
            sys.exit(f"/api/v1/me answered {response.status_code}: {response.text[:300]}")
        except httpx.TransportError:
            time.sleep(0.2)
    stop(proc)
    sys.exit(f"gunicorn did not serve within 60 s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of the master and its workers
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_tenant(env: dict[str, str]) -> str:
    """A tenant of the bench's own (reused across runs, so a dev database's demo tenants are left
    alone) with a priced model pinned as `default`; returns its slug."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/budgets.py sets up and checks its own tenants")
    from django.db import connections

    from catalog.models import LanguageModel, ModelPin, Provider
    from tenants.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(slug="bench-budgets", defaults={"name": "Bench: budgets"})
    provider, _ = Provider.objects.get_or_create(tenant=tenant, name="demo", defaults={"kind": Provider.Kind.DEMO})
    model, _ = LanguageModel.objects.get_or_create(
        tenant=tenant,
        provider=provider,
        model_id="bench-model-2025-01-01",
        defaults={
            "input_price": 1_000_000,
            "output_price": 2_000_000,
            "context_window": 32_000,
            "max_output_tokens": 4096,
        },
    )
    ModelPin.objects.update_or_create(tenant=tenant, alias="default", defaults={"model": model})
    connections.close_all()  # the bench's own connection is not needed while it measures
    return tenant.slug


class Budgets:
    """The bench tenant's two budgets, set up over the REST API: one enabled per scenario."""

    def __init__(self, base: str, key: str) -> None:
        self.api = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        # `total` periods: a day or month boundary in the middle of a run would start a new counter.
        common = {"period": "total", "unit": "usd_micros", "limit": HUGE_LIMIT, "enabled": False}
        wanted = {"hot": {"name": "bench hot", "scope": "tenant"}, "many": {"name": "bench many", "scope": "end_user"}}
        existing = {str(b["name"]): b["id"] for b in self._list()}
        self.ids: dict[str, str] = {}
        for name in existing:
            if name not in {w["name"] for w in wanted.values()}:
                # Another budget of the tenant would add its own counter to every pair.
                self._ok(self.api.patch(f"/budgets/{existing[name]}", json={"enabled": False}))
        for scenario, fields in wanted.items():
            if fields["name"] in existing:  # a previous run's: the same settings, reused
                pk = existing[fields["name"]]
                self._ok(self.api.patch(f"/budgets/{pk}", json={"limit": HUGE_LIMIT, "enabled": False}))
            else:
                pk = self._ok(self.api.post("/budgets", json={**fields, **common}))["id"]
            self.ids[scenario] = pk

    def _list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = "/budgets?page_size=500"
        while url:
            page = self._ok(self.api.get(url))
            found += page["results"]
            url = page.get("next")
        return found

    @staticmethod
    def _ok(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 300:
            sys.exit(
                f"{response.request.method} {response.request.url} answered {response.status_code}:"
                f" {response.text[:500]}"
            )
        return response.json()

    def only(self, scenario: str) -> None:
        for name, pk in self.ids.items():
            self._ok(self.api.patch(f"/budgets/{pk}", json={"enabled": name == scenario}))

    def close(self) -> None:
        for pk in self.ids.values():
            self._ok(self.api.patch(f"/budgets/{pk}", json={"enabled": False}))
        self.api.close()


# --- SQL statements per pair (in this process) ----------------------------------------------------


@dataclass
class Statements:
    scenario: str
    reserve: int  # statements of one reserve request (median over the counted pairs)
    settle: int
    me: int  # of one GET /api/v1/me
    ms_per_pair: float  # in process, no HTTP, statements not captured (median)
    cpu_pair_ms: float  # this thread's CPU for one pair, in process (median; PostgreSQL's not included)
    cpu_me_ms: float  # the same for one GET /api/v1/me, alternating with the pairs
    sql: list[str]  # one pair's statements, for --show-sql

    @property
    def pair(self) -> int:
        return self.reserve + self.settle


def count_statements(scenario: str, key: str, pairs: int = 30) -> Statements:
    """A pair's SQL statements, counted with Django's CaptureQueriesContext around each request of
    Django's test client: the server's middleware, authentication, throttle, views and services,
    without HTTP. BEGIN and COMMIT are in Django's log and counted; the connection health check
    (CONN_HEALTH_CHECKS: a `SELECT 1` at the first query of each request) is not. After a warm-up,
    so per-process caches and counters exist as they do under load."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    body: dict[str, object] = {"model": "default", "input_tokens": 200, "max_output_tokens": 200}
    if scenario == "many":
        body["end_user_id"] = "bench-user-0"
    usage = {"input_tokens": 200, "output_tokens": 100}

    def pair() -> tuple[list[str], list[str]]:
        with CaptureQueriesContext(connection) as reserve:
            reserved = client.post("/api/v1/reservations", body, content_type="application/json")
        if reserved.status_code != 201:
            sys.exit(f"in-process reserve answered {reserved.status_code}: {reserved.content[:300]!r}")
        with CaptureQueriesContext(connection) as settle:
            settled = client.post(
                f"/api/v1/reservations/{reserved.json()['id']}/settle", usage, content_type="application/json"
            )
        if settled.status_code != 200:
            sys.exit(f"in-process settle answered {settled.status_code}: {settled.content[:300]!r}")
        return [q["sql"] for q in reserve.captured_queries], [q["sql"] for q in settle.captured_queries]

    for _ in range(5):
        pair()
    counted = [pair() for _ in range(pairs)]
    with CaptureQueriesContext(connection) as me:
        client.get("/api/v1/me")
    timings, cpu_pair, cpu_me = [], [], []
    for _ in range(max(pairs, 100)):  # alternating, so that drift in the machine's load hits both alike
        start, cpu = time.perf_counter(), time.thread_time()
        reserved = client.post("/api/v1/reservations", body, content_type="application/json")
        client.post(f"/api/v1/reservations/{reserved.json()['id']}/settle", usage, content_type="application/json")
        timings.append(time.perf_counter() - start)
        cpu_pair.append(time.thread_time() - cpu)
        cpu = time.thread_time()
        client.get("/api/v1/me")
        cpu_me.append(time.thread_time() - cpu)
    reserve_sql, settle_sql = counted[-1]
    return Statements(
        scenario=scenario,
        reserve=round(statistics.median(len(r) for r, _ in counted)),
        settle=round(statistics.median(len(s) for _, s in counted)),
        me=len(me.captured_queries),
        ms_per_pair=statistics.median(timings) * 1000,
        cpu_pair_ms=statistics.median(cpu_pair) * 1000,
        cpu_me_ms=statistics.median(cpu_me) * 1000,
        sql=[f"reserve: {q}" for q in reserve_sql] + [f"settle:  {q}" for q in settle_sql],
    )


# --- Report ------------------------------------------------------------------------------------


def report(cells: list[Cell], statements: dict[str, Statements], args: argparse.Namespace) -> None:
    by = {(c.target, c.scenario, c.clients): c for c in cells}
    print()
    round_seconds = args.seconds / args.rounds
    print(
        f"reserve+settle pairs (`me`: GET /api/v1/me requests), {args.rounds} rounds of {round_seconds:.1f} s a cell,"
        f" after {args.warmup:.1f} s warm-up; {os.cpu_count()} cores"
    )
    print(
        f"{'scenario':<6} {'clients':>7} {'target':<6} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'count':>7}  {'REST/me':>8} {'REST/floor':>10}  {'load':>5}  rounds per s"
    )
    for c in cells:
        floor, me = by.get(("floor", c.scenario, c.clients)), by.get(("me", c.scenario, c.clients))
        to_floor = f"{c.pps / floor.pps:.1%}" if c.target == "rest" and floor and floor.pps else ""
        to_me = f"{c.pps / me.pps:.1%}" if c.target == "rest" and me and me.pps else ""
        rates = ", ".join(f"{rate:.0f}" for rate in c.rates)
        print(
            f"{c.scenario:<6} {c.clients:>7} {c.target:<6} {c.pps:>8.0f} {c.p50_ms:>8.2f} {c.p99_ms:>8.2f} "
            f"{c.errors:>7} {c.pairs:>7}  {to_me:>8} {to_floor:>10}  {c.load:>5.2f}  {rates}"
            f"  (load generator {c.client_cpu:.0%} of a core)"
        )
        if c.first_error:
            print(f"    first error: {c.first_error}")
    measured = [c for c in cells if c.server_ms is not None]
    if measured:
        print()
        print(
            "CPU a pair (`me`: a request), ms, over the measured rounds: the server (gunicorn's processes),"
            " the database's backends for this database, the load generator"
        )
        print(f"{'scenario':<6} {'clients':>7} {'target':<6} {'server':>7} {'database':>8} {'client':>7} {'total':>7}")
        for c in measured:
            total = (c.server_ms or 0) + (c.database_ms or 0) + c.client_ms
            print(
                f"{c.scenario:<6} {c.clients:>7} {c.target:<6} {c.server_ms:>7.2f} {c.database_ms or 0:>8.2f}"
                f" {c.client_ms:>7.2f} {total:>7.2f}"
            )
    if statements:
        print()
        print("SQL statements (in process, Django's test client, after warm-up; BEGIN/COMMIT counted):")
        for st in statements.values():
            print(
                f"{st.scenario:<6} reserve {st.reserve}, settle {st.settle}: {st.pair} a pair"
                f" (GET /api/v1/me: {st.me}); {st.ms_per_pair:.2f} ms a pair in process, no HTTP;"
                f" CPU {st.cpu_pair_ms:.2f} ms a pair, {st.cpu_me_ms:.2f} ms a /me request"
                f" ({st.cpu_pair_ms / st.cpu_me_ms:.2f} /me requests a pair)"
            )
            if args.show_sql:
                for sql in st.sql:
                    print(f"    {sql[:300]}")
    rest = [c for c in cells if c.target == "rest"]
    if rest:
        print()
        print(
            "issue 14: pairs/s >= 40 % of GET /api/v1/me requests/s; p50 of a pair at 1 client <= 6 ms; <= 6 statements"
        )
        for scenario in dict.fromkeys(c.scenario for c in rest):
            ratios = []
            for c in rest:
                me = by.get(("me", scenario, c.clients))
                if c.scenario == scenario and me and me.pps:
                    ratios.append(f"{c.clients} clients {c.pps:.0f}/{me.pps:.0f} = {c.pps / me.pps:.0%}")
            one = by.get(("rest", scenario, 1))
            p50 = f"{one.p50_ms:.2f} ms" if one else "not measured"
            counted = statements.get(scenario)
            print(
                f"{scenario:<6} pairs/s / me req/s: {'; '.join(ratios) or 'not measured'};"
                f" p50 at 1 client {p50}; statements {counted.pair if counted else '?'} a pair"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8,32,64", help="comma-separated concurrencies")
    parser.add_argument("--seconds", type=float, default=6, help="measured time per cell, split into rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--scenarios", default="hot,many")
    parser.add_argument("--targets", default="floor,me,rest", help="comma-separated, of: floor, me, rest")
    parser.add_argument("--show-sql", action="store_true", help="print one pair's SQL statements")
    parser.add_argument("--load", choices=["floor", "rest", "me"], help=argparse.SUPPRESS)  # internal: be the load
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--base", default="", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.load:
        args.clients = int(args.clients)
        try:
            import uvloop  # a cheaper event loop leaves more CPU to the server
        except ImportError:
            result = asyncio.run(load(args))
        else:
            result = uvloop.run(load(args))
        Path(args.out).write_text(json.dumps(asdict(result)))
        return

    dsn, redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (dsn and redis):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run `make bench`, which starts embedded ones if needed.")
    concurrencies = [int(n) for n in args.clients.split(",")]
    scenarios = args.scenarios.split(",")
    targets = args.targets.split(",")
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 50,
        "STATIC_USE_FINDERS": "true",
        "API_THROTTLE_RATE": "100000000/min",  # measure reservations, not the throttle's 429s
        "LOG_LEVEL": "WARNING",
    }
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores,"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start",
        flush=True,
    )
    proc = None
    cpu = None
    key = ""
    base = ""
    budgets = None
    served = {"rest", "me"} & set(targets)
    if served:
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        slug = bench_tenant(env)
        key = manage(env, "apikey", "create", "--tenant", slug, "--name", "bench", "--scopes", "admin", "--replace")
        key = key.strip().splitlines()[-1]
        vacuum(dsn)
        proc, base, _ = start_server(env, key)
        cpu = CpuWatch(proc.pid, urlsplit(dsn).path.lstrip("/"))
    if "floor" in targets:
        floor_setup(dsn, max(concurrencies))
    cells: list[Cell] = []
    statements: dict[str, Statements] = {}
    try:
        if proc is not None:
            budgets = Budgets(base, key)
        for scenario in scenarios:
            if budgets is not None:
                budgets.only(scenario)
            if "rest" in targets:
                statements[scenario] = count_statements(scenario, key)
                print(f"{scenario} statements a pair: {statements[scenario].pair}", flush=True)
            for clients in concurrencies:
                # Floor, me and REST side by side, so that drift in the machine's load hits them alike.
                for target in targets:
                    cell = measure(target, scenario, clients, args, cpu, base=base, key=key, dsn=dsn)
                    unit = "requests/s" if target == "me" else "pairs/s"
                    print(f"{scenario} {clients:>2} clients {target:<5} {cell.pps:>7.0f} {unit}", flush=True)
                    cells.append(cell)
    finally:
        if budgets is not None:
            budgets.close()
        if proc is not None:
            stop(proc)
        if "floor" in targets:
            floor_teardown(dsn)
    report(cells, statements, args)


if __name__ == "__main__":
    main()
