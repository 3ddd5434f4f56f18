"""Traces under load, through the production server command (gunicorn, DEBUG=false):

1. ingestion: `POST /api/v1/traces/ingest` with batches of 100 and of 1,000 new spans from
   concurrent clients: spans/s and the acknowledgement latency p50/p99 of a batch;
2. lag from acknowledgement to visible: a one-span batch, then `GET /api/v1/traces/{id}` until it
   answers 200 (ingestion is synchronous, so this is one read after the ack);
3. with the bench tenant seeded to 1,000,000 spans in 100,000 traces (bench/traces_seed.py, COPY):
   p50/p95 of the trace list (`GET /api/v1/traces`, first page of 50) unfiltered and with filters,
   and of full-text search (`?q=`) for a rare token, a common word and non-English words;
4. a 10,000-span trace (ingested over the API in batches of 1,000): time to open it in the
   console (the trace page: header, rollups, top levels of the tree), to load one lazy subtree, and
   to fetch it whole over the API.

    make bench   (runs this too)
    python scripts/devenv.py exec -- .venv/bin/python bench/traces.py
    python bench/traces.py [--clients 4] [--seconds 8] [--traces 100000] [--skip-seed]   # with URLs set

The load runs in this process (asyncio + httpx) on loopback and shares the 2 cores with gunicorn
and PostgreSQL, so the figures are a floor of what the server does alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER_ARGS = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
SLUG = "bench-traces"
PASSWORD = "bench-traces-password"  # noqa: S105 - a throwaway bench user on a local database


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


def start_server(env: dict[str, str], key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [PYTHON, "-m", "gunicorn", "config.wsgi:application", *SERVER_ARGS, "--bind", f"127.0.0.1:{port}"]
    log = Path(tempfile.gettempdir()) / "bench-gunicorn-traces.log"
    print(f"server: gunicorn {' '.join(cmd[3:])}", flush=True)
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    stop(proc)
    sys.exit(f"gunicorn did not serve within 60 s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def batch(size: int, *, trace_id: str | None = None, parent: str = "") -> bytes:
    now = datetime.now(UTC)
    spans = []
    for i in range(size):
        start = now - timedelta(milliseconds=size - i)
        spans.append(
            {
                "trace_id": trace_id or secrets.token_hex(16),
                "span_id": secrets.token_hex(8),
                "parent_span_id": parent,
                "name": f"chat step {i}",
                "kind": "llm",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(milliseconds=1)).isoformat(),
                "model": "gpt-4o-2024-08-06",
                "usage": {"input_tokens": 120, "output_tokens": 30},
                "input": "Where is my order? Wo ist meine Bestellung?",
                "output": "It ships tomorrow.",
                "end_user_id": f"u{i % 50}",
                "session_id": f"s{i % 20}",
            }
        )
    return json.dumps({"spans": spans}).encode()


async def ingest_load(base: str, key: str, size: int, clients: int, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    spans = 0

    async def client() -> None:
        nonlocal spans
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                body = batch(size)
                t0 = time.perf_counter()
                response = await http.post("/api/v1/traces/ingest", content=body)
                elapsed = time.perf_counter() - t0
                if response.status_code != 200 or response.json()["accepted"] != size:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                latencies.append(elapsed)
                spans += size

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    return {
        "batch": size,
        "clients": clients,
        "spans_per_s": spans / wall,
        "batches": len(latencies),
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def lag(base: str, key: str, samples: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    lags, acks = [], []
    with httpx.Client(base_url=base, headers={**headers, "Content-Type": "application/json"}, timeout=30) as http:
        for _ in range(samples):
            trace_id = secrets.token_hex(16)
            t0 = time.perf_counter()
            assert http.post("/api/v1/traces/ingest", content=batch(1, trace_id=trace_id)).status_code == 200
            acked = time.perf_counter()
            while http.get(f"/api/v1/traces/{trace_id}").status_code != 200:
                time.sleep(0.005)
            visible = time.perf_counter()
            acks.append(acked - t0)
            lags.append(visible - acked)
    return {
        "samples": samples,
        "ack_p50_ms": pct(acks, 50) * 1000,
        "lag_p50_ms": pct(lags, 50) * 1000,
        "lag_p99_ms": pct(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000,
    }


def timed_gets(http: httpx.Client, path: str, n: int) -> dict[str, Any]:
    times, rows = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        response = http.get(path)
        times.append(time.perf_counter() - t0)
        if response.status_code != 200:
            return {"path": path, "error": f"{response.status_code} {response.text[:200]}"}
        body = response.json()
        found = body.get("results", body.get("spans")) if isinstance(body, dict) else None
        rows = len(found) if isinstance(found, list) else 0
    return {"path": path, "n": n, "rows": rows, "p50_ms": pct(times, 50) * 1000, "p95_ms": pct(times, 95) * 1000}


def measure_reads(api: httpx.Client, searches: dict[str, str], n: int, label: str) -> dict[str, Any]:
    reads = {}
    for name, path in searches.items():
        api.get(path)  # warm
        reads[name] = timed_gets(api, path, n)
        print(f"{label}: {name:32} {json.dumps(reads[name])}", flush=True)
    return reads


def console_login(base: str, email: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    page = http.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    response = http.post(
        "/login/",
        data={"username": email, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": base + "/login/"},
    )
    assert response.status_code == 302, f"login answered {response.status_code}"
    return http


def bench_user(slug: str) -> str:
    from tenants.models import Membership, Role, Tenant, User

    tenant = Tenant.objects.get(slug=slug)
    email = "bench-traces@bench.test"
    user = User.objects.filter(email=email).first() or User.objects.create_user(email, PASSWORD)
    user.set_password(PASSWORD)
    user.save()
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.ADMIN})
    return email


def big_trace(base: str, key: str, spans: int) -> tuple[str, str, str]:
    """A trace of `spans` spans: a root, 100 children, the rest leaves under them; returns
    (trace id, one child's span id, seconds to ingest)."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    now = datetime.now(UTC)
    items: list[dict[str, Any]] = [
        {
            "trace_id": trace_id,
            "span_id": root,
            "name": "invoke_agent big",
            "kind": "agent",
            "start_time": now.isoformat(),
            "end_time": (now + timedelta(seconds=60)).isoformat(),
        }
    ]
    mids = [secrets.token_hex(8) for _ in range(100)]
    for i, mid in enumerate(mids):
        at = now + timedelta(milliseconds=i * 500)
        items.append(
            {
                "trace_id": trace_id,
                "span_id": mid,
                "parent_span_id": root,
                "name": f"step {i}",
                "kind": "llm",
                "start_time": at.isoformat(),
                "end_time": (at + timedelta(milliseconds=400)).isoformat(),
                "model": "gpt-4o-2024-08-06",
                "usage": {"input_tokens": 100, "output_tokens": 10},
            }
        )
    i = 0
    while len(items) < spans:
        mid = mids[i % len(mids)]
        at = now + timedelta(milliseconds=(i % 100) * 500 + 1)
        items.append(
            {
                "trace_id": trace_id,
                "span_id": secrets.token_hex(8),
                "parent_span_id": mid,
                "name": f"tool {i}",
                "kind": "tool",
                "start_time": at.isoformat(),
                "end_time": (at + timedelta(milliseconds=3)).isoformat(),
                "input": {"n": i},
            }
        )
        i += 1
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        for start in range(0, len(items), 1000):
            response = http.post("/api/v1/traces/ingest", json={"spans": items[start : start + 1000]})
            assert response.status_code == 200 and response.json()["rejected"] == 0, response.text[:300]
    return trace_id, mids[0], f"{time.perf_counter() - t0:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4", help="comma-separated concurrencies of the ingest load")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--traces", type=int, default=100_000, help="traces to seed (10 spans each)")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--queries", type=int, default=40, help="requests per list/search measurement")
    parser.add_argument("--big", type=int, default=10_000, help="spans in the big trace")
    parser.add_argument("--out", default="", help="also write the results as JSON here")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run `make bench`, which starts embedded ones if needed.")
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 50,
        "STATIC_USE_FINDERS": "true",
        "API_THROTTLE_RATE": "100000000/min",
        "LOG_LEVEL": "WARNING",
        # Plain http on loopback: the console's session cookie must not be Secure-only here.
        "SECURE_COOKIES": "false",
    }
    os.environ.update(env)
    manage(env, "migrate", "--noinput", "--verbosity", "0", "--skip-checks")
    sys.path.insert(0, str(ROOT / "bench"))
    import traces_seed

    traces_seed.setup_django()
    from django.db import connections

    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    if not args.skip_seed:
        results["seed"] = traces_seed.seed(
            slug=SLUG, traces=args.traces, spans_per_trace=10, reseed=False, rng=random.Random(42)
        )
    else:
        from tenants.models import Tenant

        Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench: traces"})
    email = bench_user(SLUG)
    connections.close_all()
    key = manage(env, "apikey", "create", "--tenant", SLUG, "--name", "bench", "--scopes", "admin", "--replace")
    key = key.strip().splitlines()[-1]
    proc, base = start_server(env, key)
    try:
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        stored = api.get("/api/v1/traces?page_size=1").json()
        print(f"tenant {SLUG}: newest trace {stored['results'][0]['trace_id'] if stored['results'] else '-'}")
        # 3. Reads against the seeded tenant, before ingestion adds its own spans.
        searches = {
            "list": "/api/v1/traces",
            "list status=error": "/api/v1/traces?status=error",
            "list end_user": "/api/v1/traces?end_user=user-123",
            "list session": "/api/v1/traces?session=sess-4242",
            "list model": "/api/v1/traces?model=gemini-2.0-flash-001",
            "list tag": "/api/v1/traces?tag=vip",
            "list min_latency_ms=5000": "/api/v1/traces?min_latency_ms=5000",
            "list last 24h": "/api/v1/traces?since="
            + (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            "search rare ORD-42-42000": "/api/v1/traces?q=ORD-42-42000",
            "search common 'refund'": "/api/v1/traces?q=refund",
            "search German 'Kühlschrank'": "/api/v1/traces?q=K%C3%BChlschrank",
            "search Japanese '返金'": "/api/v1/traces?q=%E8%BF%94%E9%87%91",
            "search Russian 'заказ'": "/api/v1/traces?q=%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7",
        }
        results["reads"] = measure_reads(api, searches, args.queries, "seeded")
        # 1. Ingestion.
        results["ingest"] = []
        for clients in [int(n) for n in args.clients.split(",")]:
            for size in (100, 1000):
                asyncio.run(ingest_load(base, key, size, clients, 1.5))  # warm-up
                cell = asyncio.run(ingest_load(base, key, size, clients, args.seconds))
                results["ingest"].append(cell)
                print(f"ingest {json.dumps(cell)}", flush=True)
        # 3 again: now the newest traces are the ones just ingested, which contain none of the
        # seeded words, so a search for them must walk past those first.
        results["reads_after_ingest"] = measure_reads(api, searches, args.queries, "after ingest")
        # 2. Lag.
        results["lag"] = lag(base, key, 100)
        print(f"lag {json.dumps(results['lag'])}", flush=True)
        # 4. A 10,000-span trace.
        trace_id, child, ingest_seconds = big_trace(base, key, args.big)
        console = console_login(base, email)
        page = f"/t/{SLUG}/traces/{trace_id}/"
        lazy = f"/t/{SLUG}/traces/{trace_id}/spans/{child}/children/"
        opened = []
        for _ in range(10):
            t0 = time.perf_counter()
            response = console.get(page)
            opened.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
        lazy_times = []
        for _ in range(10):
            t0 = time.perf_counter()
            response = console.get(lazy, headers={"HX-Request": "true"})
            lazy_times.append(time.perf_counter() - t0)
            assert response.status_code == 200
        whole = timed_gets(api, f"/api/v1/traces/{trace_id}", 5)
        results["big_trace"] = {
            "spans": args.big,
            "ingest_seconds": ingest_seconds,
            "page_bytes": len(response.content),
            "open_page_p50_ms": pct(opened, 50) * 1000,
            "open_page_max_ms": max(opened) * 1000,
            "lazy_subtree_p50_ms": pct(lazy_times, 50) * 1000,
            "api_whole_trace": whole,
        }
        print(f"big trace {json.dumps(results['big_trace'])}", flush=True)
    finally:
        stop(proc)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps({k: v for k, v in results.items() if k != "reads"}, default=str)[:3000])


if __name__ == "__main__":
    main()
