"""The gateway's cost on the path of a model call, side by side in one run with the same fake
provider called directly (and, with --litellm, LiteLLM's proxy in front of the same fake):

1. latency: added latency at 1 client, p50 and p99 of `POST /v1/chat/completions` through the
   gateway (budgets, guardrails and tracing all on: the default policy, a budget on the tenant)
   minus the same request sent to the fake directly;
2. throughput: requests/s at 8 and 32 concurrent clients, gateway and direct (and LiteLLM);
3. ttfc: streaming, time to first content chunk, gateway minus direct, p50 at 1 client;
4. chunks: streaming with budgets and guardrails on, at 1 client: for streams of N content chunks
   sent at once, time to first chunk and to `[DONE]`, gateway minus direct, and the per-chunk
   overhead ((gateway p50 - direct p50) to `[DONE]` / N, and the slope between two N); and a paced
   stream (a 4-character chunk every 20 ms, ~50 tokens/s, for 2 s) whose first chunk waits for the
   output guardrails' window (gateway.guard; today nothing leaves before 256 characters came);
5. streams: --streams (1,000) streams held open at once through the one gateway process (the fake
   sends 300 characters, then a chunk a second until the bench has seen every stream's first
   chunk and releases them), errors counted (a status, an error event, no `[DONE]`, a transport
   error), and the web process's RSS idle, at the peak and after;
6. budget: --budget-clients (64) concurrent clients, each sending --budget-requests calls, against
   one small tenant budget of a tenant created for the run (no counter yet): admitted, refused
   402 `budget_exceeded`, spend against the limit (overspend must be 0), the counter equal to its
   ledger, nothing left reserved, and `budgets_verify` for the tenant.

    python scripts/devenv.py exec -- .venv/bin/python bench/gateway.py            # embedded servers
    python bench/gateway.py [--seconds 5] [--requests 300] [--litellm]           # URLs set
    python bench/gateway.py --only chunks,streams,budget [--streams 1000]        # some parts alone

The fake provider is a raw ASGI app under uvicorn in its own process (`--serve-fake PORT`),
answering at once unless the body carries a `bench` field (passed through by the gateway like any
unknown field) asking for a longer, paced or held stream; the gateway is `uvicorn
config.asgi:application` in one process, as `make run` serves it. --litellm starts LiteLLM's proxy
from /tmp/litellm-venv (pinned in bench/litellm/requirements.txt; its config printed with the
figures). --floor starts a bare Python proxy (`floor_app`: uvicorn with the gateway's flags and one
pooled aiohttp session, none of the console's work) in front of the same fake: the most any Python
gateway on this server stack serves on this machine, printed against LiteLLM's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BIN = Path(sys.executable).parent
SLUG = "bench-gateway"
LITELLM_VENV = Path(os.environ.get("LITELLM_VENV", "/tmp/litellm-venv"))  # noqa: S108 - a path to read, not a temp file
EXACT = "fake-model-2024-01-01"
WEB_ARGS = ["--lifespan", "off", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
BODY = {"model": "default", "messages": [{"role": "user", "content": "Where is my order A-1001?"}], "max_tokens": 64}


# --- the fake provider ---------------------------------------------------------------------------

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": EXACT,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "It ships today."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": EXACT,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = (
    _chunk({"role": "assistant", "content": ""})
    + b"".join(_chunk({"content": word}) for word in ("It ", "ships ", "today."))
    + _chunk({}, "stop")
    + b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"'
    + EXACT.encode()
    + b'","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16}}\n\n'
    + b"data: [DONE]\n\n"
)


PROSE = "the parcel left our warehouse this morning and should reach you by friday afternoon "
RELEASE = asyncio.Event()  # set by POST /bench/release: held streams finish
SSE_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}


def _text(chars: int, start: int = 0) -> str:
    """`chars` characters of plain prose (nothing a guardrail flags) from offset `start` on."""
    start %= len(PROSE)
    return (PROSE * (2 + chars // len(PROSE)))[start : start + chars]


async def paced_stream(spec: dict[str, Any], send: Any) -> None:
    """A stream as the body's `bench` field asks: `burst` characters at once, then `chunks` content
    chunks of `size` characters `delay` seconds apart; with `hold`, then a chunk every `every`
    seconds until POST /bench/release (or `cap` seconds)."""
    size, delay = int(spec.get("size", 5)), float(spec.get("delay", 0))
    sent = 0

    async def piece(chars: int) -> None:
        nonlocal sent
        await send({"type": "http.response.body", "body": _chunk({"content": _text(chars, sent)}), "more_body": True})
        sent += chars

    await send(SSE_START)
    await send({"type": "http.response.body", "body": _chunk({"role": "assistant", "content": ""}), "more_body": True})
    if spec.get("burst"):
        await piece(int(spec["burst"]))
    for i in range(int(spec.get("chunks", 0))):
        if delay and i:
            await asyncio.sleep(delay)
        await piece(size)
    if spec.get("hold"):
        deadline = time.monotonic() + float(spec.get("cap", 300))
        while not RELEASE.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(RELEASE.wait(), timeout=float(spec.get("every", 1.0)))
            except TimeoutError:
                await piece(size)
    tokens = max(1, sent // 4)
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    tail = (
        _chunk({}, "stop")
        + b"data: "
        + json.dumps(
            {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": EXACT, "choices": [], "usage": usage}
        ).encode()
        + b"\n\ndata: [DONE]\n\n"
    )
    await send({"type": "http.response.body", "body": tail})


async def read_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            return raw


async def fake_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    raw = await read_body(receive)
    if scope["path"] == "/bench/release":
        RELEASE.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    stream = b'"stream": true' in raw or b'"stream":true' in raw
    if stream and b'"bench"' in raw:
        await paced_stream(json.loads(raw)["bench"], send)
        return
    if stream:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": STREAM})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(COMPLETION)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": COMPLETION})


def serve_fake(port: int) -> None:
    import uvicorn

    uvicorn.run(
        fake_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop="uvloop", http="httptools"
    )


# --- the floor: a bare Python proxy --------------------------------------------------------------

FLOOR_UPSTREAM = os.environ.get("BENCH_FLOOR_UPSTREAM", "")
_floor_session: Any = None


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least any Python gateway on this stack does: the request read, POSTed as it came to the
    fake through one pooled aiohttp session, the answer sent back. No authentication, no budget,
    no guardrail, no trace: what is left of a call's cost when the console's work is taken out."""
    global _floor_session
    if scope["type"] != "http":
        return
    import aiohttp

    raw = await read_body(receive)
    if _floor_session is None:
        _floor_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    async with _floor_session.post(
        FLOOR_UPSTREAM + "/chat/completions", data=raw, headers={"content-type": "application/json"}
    ) as response:
        answer = await response.read()
        status = response.status
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def start_floor(
    fake_url: str, logdir: Path, processes: list[subprocess.Popen[bytes]], workers: int = 1
) -> tuple[str, dict[str, str]]:
    """The bare proxy (floor_app) under the gateway's own server command and worker count."""
    port = free_port()
    process = start(
        [
            str(BIN / "uvicorn"),
            "bench.gateway:floor_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *WEB_ARGS,
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        logdir / "floor.log",
        {**os.environ, "BENCH_FLOOR_UPSTREAM": fake_url, "PYTHONPATH": str(ROOT)},
    )
    processes.append(process)
    wait_up(f"http://127.0.0.1:{port}/", process, logdir / "floor.log")
    return f"http://127.0.0.1:{port}/v1/chat/completions", {}


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env or dict(os.environ),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def setup(fake_url: str, *, slug: str = SLUG, limit: int = 10**15) -> tuple[str, str]:
    """A bench tenant (the main one reused across runs): a provider at the fake, `default` pinned
    to a priced model, the default guardrail policy, a daily tenant budget of `limit` micro-USD; a
    gateway key (new each run)."""
    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/gateway.py sets up and checks its own tenants")
    from budgets.models import Budget
    from catalog.models import LanguageModel, ModelPin, Provider
    from guardrails.services import policy_ensure_default
    from tenants.models import Scope, Tenant
    from tenants.testing import make_key

    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": f"Bench {slug}"})
    provider, _ = Provider.objects.update_or_create(
        tenant=tenant,
        name="fake",
        defaults={"kind": Provider.Kind.OPENAI_COMPATIBLE, "base_url": fake_url, "max_retries": 0},
    )
    model, _ = LanguageModel.objects.update_or_create(
        tenant=tenant,
        model_id=EXACT,
        defaults={
            "provider": provider,
            "input_price": 2_500_000,
            "output_price": 10_000_000,
            "context_window": 128_000,
            "max_output_tokens": 4096,
        },
    )
    ModelPin.objects.update_or_create(tenant=tenant, alias="default", defaults={"model": model})
    policy_ensure_default(tenant=tenant)
    Budget.objects.update_or_create(
        tenant=tenant,
        name="Bench daily",
        defaults={"period": Budget.Period.DAY, "limit": limit, "scope": Budget.Scope.TENANT},
    )
    _, secret = make_key(tenant, [Scope.GATEWAY], name=f"bench {time.time():.0f}")
    return tenant.slug, secret


# --- measurement ---------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 1)) - 1))]


async def latencies(url: str, headers: dict[str, str], n: int, body: dict[str, Any]) -> list[float]:
    out = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(10):
            (await client.post(url, json=body, headers=headers)).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            response = await client.post(url, json=body, headers=headers)
            response.raise_for_status()
            out.append(time.perf_counter() - started)
    return out


async def first_chunk(url: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    body = {**BODY, "stream": True}
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(n + 5):
            started = time.perf_counter()
            async with client.stream("POST", url, json=body, headers=headers) as response:
                response.raise_for_status()
                seen = None
                async for line in response.aiter_lines():
                    if seen is None and '"content":"It' in line.replace(" ", ""):
                        seen = time.perf_counter() - started
                if i >= 5 and seen is not None:
                    out.append(seen)
    return out


async def throughput(
    url: str, headers: dict[str, str], clients: int, seconds: float, request: dict[str, Any] | None = None
) -> tuple[float, int, int]:
    """Requests/s of `clients` concurrent clients, each sending the next request when its last
    answer came. The load is generated with aiohttp (a fifth of httpx's CPU per request: the
    bench shares the machine's two cores with what it measures)."""
    import aiohttp

    done = errors = 0
    stop_at = time.perf_counter() + seconds
    body = json.dumps(request or BODY).encode()
    sent = {**headers, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def one() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                async with client.post(url, data=body, headers=sent) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed, errors, done


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far."""
    import psutil

    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def postgres_cpu() -> dict[int, float]:
    """CPU time (user + system) of every PostgreSQL process on the machine so far, by pid (its
    backends come and go: compare two readings with postgres_spent)."""
    import psutil

    found: dict[int, float] = {}
    for process in psutil.process_iter(["name"]):
        if (process.info.get("name") or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                found[process.pid] = sum(process.cpu_times()[:2])
    return found


def postgres_spent(before: dict[int, float]) -> float:
    """PostgreSQL's CPU seconds since `before`: each process's growth, a new one's whole time (one
    that exited meanwhile is lost: the bench's clients keep their connections)."""
    return sum(spent - before.get(pid, 0.0) for pid, spent in postgres_cpu().items())


def vacuum_budget_tables() -> None:
    """VACUUM ANALYZE the tables every call writes, as autovacuum keeps them in production: the
    bench tenant's budget counter is updated twice a call, run after run, and a database with
    autovacuum off (this machine's) makes each update step over its dead versions (the reserve
    statement went from ~0.3 to 2.5 ms over a day of runs)."""
    import psycopg

    tables = ["budgets_budgetcounter", "budgets_reservation", "budgets_reservationline", "budgets_ledgerentry"]
    tables += ["traces_span", "traces_trace", "gateway_gatewayrequest"]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) " + ", ".join(tables))


def commit_floor(n: int) -> list[float]:
    """Durable commits of one small row on the bench's database, measured in the same run: the
    floor under the gateway's admission, whose one statement commits and waits for the disk (this
    machine's fsync costs from 0.1 to 3 ms depending on what else writes)."""
    import psycopg

    out = []
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_floor (x int)")
        try:
            for _ in range(n):
                started = time.perf_counter()
                conn.execute("INSERT INTO bench_commit_floor VALUES (1)")
                out.append(time.perf_counter() - started)
        finally:
            conn.execute("DROP TABLE bench_commit_floor")
    return out


def logged() -> int:
    """Rows in the gateway's request log (one per call, written by the recorder)."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM gateway_gatewayrequest").fetchone()
    return int(row[0]) if row else 0


def wait_logged(target: int, timeout: float = 120.0) -> float:
    """Seconds until the request log holds `target` rows (the recorder has caught up), or until it
    stopped growing for 3 s (a call that left no row: said so)."""
    started = last_change = time.perf_counter()
    seen = logged()
    while seen < target:
        now = time.perf_counter()
        if now - last_change > 3 or now - started > timeout:
            print(f"# the request log stopped at {seen} rows, {target - seen} short of the calls made")
            return last_change - started
        time.sleep(0.005)
        if (count := logged()) != seen:
            seen, last_change = count, time.perf_counter()
    return time.perf_counter() - started


def db_commits() -> int:
    """Transactions committed on the bench's database so far (pg_stat_database)."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def ms(values: list[float], p: float) -> float:
    return round(pct(values, p) * 1000, 2)


CONTENT = re.compile(r'"content": ?"[^"]')  # a chunk that carries text


@dataclass
class StreamTimes:
    first: list[float]  # seconds to the first content chunk, per stream
    done: list[float]  # seconds to `data: [DONE]`, per stream
    chunks: int  # content chunks the client received, per stream (of the last one)


async def stream_times(url: str, headers: dict[str, str], body: dict[str, Any], n: int, warmup: int = 3) -> StreamTimes:
    """`n` streams one after the other (after `warmup`), each timed to its first content chunk and
    to `[DONE]`; a stream without both, or with an error event, raises."""
    out = StreamTimes([], [], 0)
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(n + warmup):
            started = time.perf_counter()
            first = done = None
            chunks = 0
            async with client.stream("POST", url, json=body, headers=headers) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    now = time.perf_counter() - started
                    if line == "data: [DONE]":
                        done = now
                    elif CONTENT.search(line):
                        first = now if first is None else first
                        chunks += 1
                    elif '"error"' in line:
                        raise RuntimeError(f"error event: {line}")
            if first is None or done is None:
                raise RuntimeError("a stream ended without content or [DONE]")
            if i >= warmup:
                out.first.append(first)
                out.done.append(done)
                out.chunks = chunks
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class OpenStreams:
    opened: int = 0  # streams whose first content chunk arrived
    peak: int = 0  # the most open at once (first chunk seen, [DONE] not yet)
    finished: int = 0  # streams that ended with [DONE], no error
    errors: Counter[str] = field(default_factory=Counter)
    seconds_to_open: float = 0.0  # from the first request to the last stream's first chunk
    rss_idle: float = 0.0
    rss_peak: float = 0.0
    rss_after: float = 0.0
    fds_peak: int = 0
    fds_after: int = 0


async def open_streams(
    url: str, headers: dict[str, str], n: int, fake_root: str, web_pid: int, hold: float
) -> OpenStreams:
    """`n` streams opened at once through the gateway and held open by the fake (a chunk a second)
    until every one has shown its first content chunk (or failed), `hold` more seconds, then
    released. The web process's RSS is sampled every 0.2 s."""
    result = OpenStreams(rss_idle=rss_mib(web_pid))
    body = {**BODY, "stream": True, "bench": {"burst": 300, "size": 5, "hold": True, "every": 1.0, "cap": 600}}
    now_open = settled = 0
    all_in = asyncio.Event()
    started = time.perf_counter()

    def count_in() -> None:
        nonlocal settled
        settled += 1
        if settled == n:
            result.seconds_to_open = time.perf_counter() - started
            all_in.set()

    limits = httpx.Limits(max_connections=n + 16, max_keepalive_connections=n + 16)
    timeout = httpx.Timeout(660, connect=120, pool=120)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def one() -> None:
            nonlocal now_open
            seen = done = False
            try:
                async with client.stream("POST", url, json=body, headers=headers) as response:
                    if response.status_code != 200:
                        result.errors[f"status {response.status_code}"] += 1
                        count_in()
                        return
                    async for line in response.aiter_lines():
                        if line == "data: [DONE]":
                            done = True
                        elif not seen and CONTENT.search(line):
                            seen = True
                            now_open += 1
                            result.opened += 1
                            result.peak = max(result.peak, now_open)
                            count_in()
                        elif '"error"' in line:
                            result.errors["error event"] += 1
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] += 1
            if seen:
                now_open -= 1
            else:
                count_in()
            if not done:
                result.errors["no [DONE]"] += 1
            elif not seen:
                result.errors["no content"] += 1
            else:
                result.finished += 1

        async def sample() -> None:
            while True:
                result.rss_peak = max(result.rss_peak, rss_mib(web_pid))
                if now_open == result.peak:
                    result.fds_peak = max(result.fds_peak, len(os.listdir(f"/proc/{web_pid}/fd")))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.wait_for(all_in.wait(), timeout=600)
        await asyncio.sleep(hold)
        (await client.post(f"{fake_root}/bench/release")).raise_for_status()
        await asyncio.gather(*tasks)
        sampler.cancel()
    await asyncio.sleep(1.0)  # the last conclusions are written after [DONE] has been sent
    result.rss_after = rss_mib(web_pid)
    result.fds_after = len(os.listdir(f"/proc/{web_pid}/fd"))
    return result


async def budget_race(url: str, headers: dict[str, str], clients: int, calls: int) -> tuple[Counter[str], int]:
    """`clients` clients at once, each sending `calls` requests one after the other: the answers
    by status (402s by code too) and the cost the gateway reported for the admitted ones
    (x-aoc-cost-usd, in micro-USD)."""
    answers: Counter[str] = Counter()
    reported = 0
    go = asyncio.Event()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one() -> None:
            nonlocal reported
            await go.wait()
            for _ in range(calls):
                response = await client.post(url, json=BODY, headers=headers)
                if response.status_code == 200:
                    reported += round(float(response.headers["x-aoc-cost-usd"]) * 1_000_000)
                    answers["200"] += 1
                elif response.status_code == 402:
                    answers[f"402 {response.json()['error']['code']}"] += 1
                else:
                    answers[str(response.status_code)] += 1

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await asyncio.sleep(0.1)
        go.set()
        await asyncio.gather(*tasks)
    return answers, reported


def budget_books(slug: str) -> dict[str, Any]:
    """The bench budget's counters against its ledger, and `budgets_verify` for the tenant."""
    from io import StringIO

    from django.core.management import CommandError, call_command
    from django.db.models import Count, Max, Sum

    from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
    from budgets.selectors import ledger_discrepancies
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    budget = Budget.objects.for_tenant(tenant).get(name="Bench daily")
    counters = BudgetCounter.objects.for_tenant(tenant).filter(budget=budget)
    totals = counters.aggregate(settled=Sum("settled"), reserved=Sum("reserved"))
    ledger = (
        LedgerEntry.objects.for_tenant(tenant)
        .filter(counter__in=counters)
        .aggregate(settled=Sum("settled_delta"), reserved=Sum("reserved_delta"))
    )
    reservations = Reservation.objects.for_tenant(tenant)
    held = reservations.aggregate(worst=Max("worst_case_micros"), actual=Max("actual_micros"))
    statuses = dict(reservations.values_list("status").annotate(n=Count("id")).order_by("status"))
    out, err = StringIO(), StringIO()
    try:
        call_command("budgets_verify", "--tenant", slug, stdout=out, stderr=err)
        verdict = out.getvalue().strip()
    except CommandError as exc:
        verdict = f"{err.getvalue().strip()} {exc}"
    return {
        "limit": budget.limit,
        "counters": counters.count(),
        "settled": totals["settled"] or 0,
        "reserved": totals["reserved"] or 0,
        "ledger_settled": ledger["settled"] or 0,
        "ledger_reserved": ledger["reserved"] or 0,
        "discrepancies": len(ledger_discrepancies(tenant=tenant)),
        "verify": verdict,
        "worst_case": held["worst"],
        "actual": held["actual"],
        "reservations": statuses,
    }


PARTS = ("latency", "throughput", "ttfc", "chunks", "streams", "budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--only", default=",".join(PARTS), help=f"the parts to run, of {','.join(PARTS)}")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput figure")
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy (from $LITELLM_VENV)")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure a bare Python proxy (uvicorn and one aiohttp session, no work): any Python gateway's floor",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="web processes of the gateway (uvicorn --workers) and of LiteLLM (--num_workers); the README's"
        " production command runs 2. For latency and throughput: the streams part reads one process's memory",
    )
    parser.add_argument("--stream-chunks", default="50,400", help="content chunks per stream, for `chunks`")
    parser.add_argument("--stream-requests", type=int, default=30, help="sequential streams per `chunks` figure")
    parser.add_argument("--streams", type=int, default=1000, help="streams held open at once, for `streams`")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the streams stay open once all are")
    parser.add_argument("--budget-clients", type=int, default=64)
    parser.add_argument("--budget-requests", type=int, default=8, help="calls per client, for `budget`")
    parser.add_argument("--budget-limit", type=int, default=20_000, help="the small budget, micro-USD")
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}: choose from {','.join(PARTS)}")
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A thousand streams are three thousand sockets across the processes (children inherit this).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8 * args.streams + 1024)), hard))
    logdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    fake_port, web_port = free_port(), free_port()
    fake = start([sys.executable, __file__, "--serve-fake", str(fake_port)], logdir / "fake.log")
    processes = [fake]
    try:
        wait_up(f"http://127.0.0.1:{fake_port}/", fake, logdir / "fake.log")
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        _, secret = setup(fake_url)
        vacuum_budget_tables()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "API_THROTTLE_RATE": "100000000/min",
            "PROVIDER_ALLOWED_HOSTS": "127.0.0.1",
        }
        web = start(
            [
                str(BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
                *WEB_ARGS,
                *(["--workers", str(args.workers)] if args.workers > 1 else []),
            ],
            logdir / "web.log",
            env,
        )
        processes.append(web)
        wait_up(f"http://127.0.0.1:{web_port}/healthz", web, logdir / "web.log")
        gateway_url = f"http://127.0.0.1:{web_port}/v1/chat/completions"
        targets = {
            "direct": (f"{fake_url}/chat/completions", {}),
            "gateway": (gateway_url, {"Authorization": f"Bearer {secret}"}),
        }
        pids = {"gateway": web.pid}
        if args.litellm:
            targets["litellm"] = start_litellm(fake_url, logdir, processes, args.workers)
            pids["litellm"] = processes[-1].pid
        if args.floor:
            targets["floor"] = start_floor(fake_url, logdir, processes, args.workers)
            pids["floor"] = processes[-1].pid
        print(
            f"# bench/gateway.py: {args.requests} sequential requests per latency, "
            f"{args.seconds:g} s per throughput; parts {','.join(parts)}; {args.workers} web process(es) each;"
            f" logs in {logdir}"
        )
        print(f"# load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        if args.workers > 1:
            # Every web process warmed before anything is read: one client's requests may all
            # reach one process, and another's first calls would pay its one-time costs (the
            # guardrail detectors' models take seconds of CPU to load) inside a measured cell.
            for name, (url, headers) in targets.items():
                body = {**BODY, "model": EXACT} if name == "direct" else BODY
                asyncio.run(throughput(url, headers, 8 * args.workers, 4.0, body))
        if "latency" in parts:
            one: dict[str, list[float]] = {}
            for name, (url, headers) in targets.items():
                body = {**BODY, "model": EXACT} if name == "direct" else BODY
                # Warmed first, apart: a process's first calls pay one-time costs (imports, the
                # detectors' models, caches) that are not a request's (they were counted until
                # 2026-12-08, which put the gateway's CPU a request at 1 client near twice that at 8).
                asyncio.run(latencies(url, headers, 50, body))
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                one[name] = asyncio.run(latencies(url, headers, args.requests, body))
                spent = (cpu_seconds(pids[name]) - before) / (args.requests + 10) if name in pids else 0.0
                used = f"   its processes' CPU {spent * 1000:.2f} ms a request"
                print(
                    f"1 client   {name:8s} p50 {ms(one[name], 0.5):7.2f} ms   p99 {ms(one[name], 0.99):7.2f} ms"
                    + (used if name in pids else "")
                )
            for name in targets:
                if name != "direct":
                    print(
                        f"added by {name:8s} p50 {ms(one[name], 0.5) - ms(one['direct'], 0.5):7.2f} ms   "
                        f"p99 {ms(one[name], 0.99) - ms(one['direct'], 0.99):7.2f} ms"
                    )
            floor = commit_floor(args.requests)
            print(
                f"floor: one durable commit (INSERT of one row, autocommit) p50 {ms(floor, 0.5):.2f} ms   "
                f"p99 {ms(floor, 0.99):.2f} ms: the reservation's own commit waits for it"
            )
        if "throughput" in parts:
            commits_before, gateway_served = db_commits(), 0
            for clients in (int(c) for c in args.clients.split(",")):
                rates: dict[str, float] = {}
                costs: dict[str, float] = {}  # CPU a request of the bench's client and the fake
                for name, (url, headers) in targets.items():
                    before = cpu_seconds(pids[name]) if name in pids else 0.0
                    rows = logged() if name == "gateway" else 0
                    started = time.perf_counter()
                    around = time.process_time(), cpu_seconds(fake.pid)
                    database = postgres_cpu()
                    body = {**BODY, "model": EXACT} if name == "direct" else BODY
                    rate, errors, served = asyncio.run(throughput(url, headers, clients, args.seconds, body))
                    costs[name] = (
                        (time.process_time() - around[0] + cpu_seconds(fake.pid) - around[1]) / max(served, 1) * 1000
                    )
                    if name == "direct":
                        rates[name] = rate
                        print(
                            f"{clients:3d} clients direct   {rate:8.1f} requests/s   errors {errors}   "
                            f"the bench's client and the fake: {costs[name]:.2f} ms of CPU a request"
                        )
                        continue
                    recorded = ""
                    if name == "gateway":
                        # The gateway answers before it records (gateway.recorder): a run that ends
                        # with records still queued would leave their CPU out of the figures. Both
                        # are measured until the console has logged every call.
                        answered = time.perf_counter() - started
                        caught_up = wait_logged(rows + served + errors)
                        total = answered + caught_up
                        recorded = (
                            f"   recorded {served / total:.1f} requests/s (caught up {caught_up * 1000:.0f} ms after)"
                        )
                        gateway_served += served
                    cpu = (cpu_seconds(pids[name]) - before) / max(served, 1) * 1000 if name in pids else 0.0
                    in_database = postgres_spent(database) / max(served, 1) * 1000
                    rates[name] = served / total if name == "gateway" else rate
                    print(
                        f"{clients:3d} clients {name:8s} {rate:8.1f} requests/s   errors {errors}   "
                        f"its processes' CPU {cpu:.2f} ms a request{recorded}; PostgreSQL's {in_database:.2f} ms"
                    )
                if "litellm" in rates and "gateway" in rates:
                    # What 5x LiteLLM's rate would leave for the gateway and PostgreSQL on this
                    # machine: every core's time a request, less the bench's client and the fake.
                    goal = 5 * rates["litellm"]
                    left = (os.cpu_count() or 1) * 1000 / goal - costs["gateway"]
                    print(
                        f"{clients:3d} clients gateway/litellm {rates['gateway'] / rates['litellm']:.2f}x (recorded); "
                        f"5x LiteLLM = {goal:.0f} requests/s would leave the gateway and PostgreSQL together "
                        f"{left:.2f} ms of CPU a request on {os.cpu_count()} cores "
                        f"(the bench's client and the fake take {costs['gateway']:.2f})"
                    )
                if "litellm" in rates and "floor" in rates:
                    # The bare proxy does none of the console's work: no Python gateway on this
                    # server stack and machine serves more than it does.
                    print(
                        f"{clients:3d} clients floor/litellm {rates['floor'] / rates['litellm']:.2f}x: a bare Python "
                        f"proxy (uvicorn, one aiohttp session, no work) serves {rates['floor']:.0f} requests/s, "
                        f"against 5x LiteLLM = {5 * rates['litellm']:.0f}"
                        + (f"; gateway/floor {rates['gateway'] / rates['floor']:.2f}x" if "gateway" in rates else "")
                    )
            # PostgreSQL publishes an idle backend's counts within 10 s (PGSTAT_IDLE_INTERVAL).
            time.sleep(11)
            commits = db_commits() - commits_before
            print(
                f"gateway: {commits / max(gateway_served, 1):.2f} database commits a request over the throughput "
                f"runs ({commits} commits, {gateway_served} requests; reservations, settlements, spans and logs)"
            )
        if "ttfc" in parts:
            ttft = {
                name: asyncio.run(first_chunk(url, headers, max(50, args.requests // 3)))
                for name, (url, headers) in targets.items()
                if name not in ("litellm", "floor")
            }
            print(
                f"stream first chunk  direct p50 {ms(ttft['direct'], 0.5):.2f} ms  "
                f"gateway p50 {ms(ttft['gateway'], 0.5):.2f} ms  "
                f"added p50 {ms(ttft['gateway'], 0.5) - ms(ttft['direct'], 0.5):.2f} ms"
            )
        if "chunks" in parts:
            run_chunks(targets, args)
        if "streams" in parts:
            run_streams(gateway_url, targets["gateway"][1], f"http://127.0.0.1:{fake_port}", web.pid, args)
        if "budget" in parts:
            run_budget(gateway_url, fake_url, args)
        print(f"gateway web process RSS {rss_mib(web.pid):.0f} MiB")
    finally:
        for process in processes:
            stop(process)


def run_chunks(targets: dict[str, tuple[str, dict[str, str]]], args: argparse.Namespace) -> None:
    n = args.stream_requests
    runs: list[tuple[str, dict[str, float], int]] = [
        (f"{c} chunks at once", {"chunks": int(c), "size": 5}, int(c)) for c in args.stream_chunks.split(",")
    ]
    # ~50 tokens/s for 2 s: long enough for the guardrails' window to release text before the end.
    runs.append(("paced 4 chars/20 ms", {"chunks": 100, "size": 4, "delay": 0.02}, 100))
    slope: list[tuple[int, float]] = []
    for label, spec, chunks in runs:
        times = {}
        for name in ("direct", "gateway"):
            url, headers = targets[name]
            body = {**BODY, "model": EXACT if name == "direct" else "default", "stream": True, "bench": spec}
            count = max(5, n // 3) if spec.get("delay") else n
            times[name] = asyncio.run(stream_times(url, headers, body, count, warmup=1 if spec.get("delay") else 3))
        direct, gateway = times["direct"], times["gateway"]
        added_done = ms(gateway.done, 0.5) - ms(direct.done, 0.5)
        if not spec.get("delay"):
            slope.append((chunks, added_done))
        print(
            f"stream {label:20s} first chunk direct p50 {ms(direct.first, 0.5):7.2f} ms  gateway p50 "
            f"{ms(gateway.first, 0.5):7.2f} ms  added {ms(gateway.first, 0.5) - ms(direct.first, 0.5):7.2f} ms | "
            f"[DONE] direct p50 {ms(direct.done, 0.5):7.2f} ms  gateway p50 {ms(gateway.done, 0.5):7.2f} ms  "
            f"added {added_done:7.2f} ms = {added_done * 1000 / chunks:6.0f} µs per chunk | "
            f"chunks received {direct.chunks} direct, {gateway.chunks} gateway"
        )
    if len(slope) >= 2:
        (few, few_ms), (many, many_ms) = min(slope), max(slope)
        print(
            f"stream per-chunk overhead (added to [DONE], slope from {few} to {many} chunks): "
            f"{(many_ms - few_ms) * 1000 / (many - few):.0f} µs per chunk"
        )


def run_streams(url: str, headers: dict[str, str], fake_root: str, web_pid: int, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    held = asyncio.run(open_streams(url, headers, args.streams, fake_root, web_pid, args.hold))
    errors = sum(held.errors.values())
    print(
        f"{args.streams} streams at once: opened {held.opened}, peak open at once {held.peak}, "
        f"finished with [DONE] {held.finished}, errors {errors} {dict(held.errors) or ''}; "
        f"all open after {held.seconds_to_open:.1f} s, {time.perf_counter() - started:.1f} s in all"
    )
    per_stream = (held.rss_peak - held.rss_idle) * 1024 / max(held.peak, 1)
    print(
        f"web process RSS idle {held.rss_idle:.0f} MiB, peak {held.rss_peak:.0f} MiB "
        f"(+{per_stream:.0f} KiB a stream), after {held.rss_after:.0f} MiB; "
        f"open fds at the peak {held.fds_peak}, after {held.fds_after}"
    )


def run_budget(url: str, fake_url: str, args: argparse.Namespace) -> None:
    slug = f"bench-gw-budget-{time.time():.0f}"
    _, secret = setup(fake_url, slug=slug, limit=args.budget_limit)
    clients, calls = args.budget_clients, args.budget_requests
    answers, reported = asyncio.run(budget_race(url, {"Authorization": f"Bearer {secret}"}, clients, calls))
    # The gateway writes settlements just after each answer (gateway.recorder): wait for the last.
    answered = time.perf_counter()
    books = budget_books(slug)
    while books["reserved"] and time.perf_counter() - answered < 10:
        time.sleep(0.01)
        books = budget_books(slug)
    lag = (time.perf_counter() - answered) * 1000
    refused = sum(v for k, v in answers.items() if k.startswith("402"))
    other = sum(v for k, v in answers.items() if k not in ("200",) and not k.startswith("402"))
    print(
        f"budget {clients} clients x {calls} calls against {books['limit']} µUSD (a new tenant, no counter yet): "
        f"admitted {answers['200']}, refused 402 {refused} {dict(answers)}, other {other}"
    )
    print(
        f"budget spend {books['settled']} µUSD of {books['limit']} (overspend "
        f"{max(0, books['settled'] - books['limit'])}); reported to clients {reported} µUSD; "
        f"left reserved {books['reserved']} (every settlement written {lag:.0f} ms after the last answer)"
    )
    print(
        f"budget each call held {books['worst_case']} µUSD (its worst case) and settled {books['actual']}; "
        f"reservations by status {books['reservations']}"
    )
    balanced = (books["settled"], books["reserved"]) == (books["ledger_settled"], books["ledger_reserved"])
    print(
        f"budget ledger settled {books['ledger_settled']} reserved {books['ledger_reserved']} over "
        f"{books['counters']} counter(s): {'equal to' if balanced else 'DIFFERENT FROM'} the counters, "
        f"{books['discrepancies']} discrepancies; budgets_verify: {books['verify']}"
    )


def start_litellm(
    fake_url: str, logdir: Path, processes: list[subprocess.Popen[bytes]], workers: int = 1
) -> tuple[str, dict[str, str]]:
    """LiteLLM's proxy, no database (so no budgets), in front of the same fake."""
    port = free_port()
    config = logdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: default\n"
        "    litellm_params:\n"
        f"      model: openai/{EXACT}\n"
        f"      api_base: {fake_url}\n"
        "      api_key: fake\n"
        "general_settings:\n"
        "  master_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    print("# LiteLLM config:\n" + "\n".join("#   " + line for line in config.read_text().splitlines()))
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_TELEMETRY": "False",
    }
    env.pop("DATABASE_URL", None)
    process = start(
        [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
        ],
        logdir / "litellm.log",
        env,
    )
    processes.append(process)
    wait_up(f"http://127.0.0.1:{port}/health/liveliness", process, logdir / "litellm.log")
    return f"http://127.0.0.1:{port}/v1/chat/completions", {"Authorization": "Bearer sk-bench"}


if __name__ == "__main__":
    main()
