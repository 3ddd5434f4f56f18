"""The traces hot paths next to their PostgreSQL floors, measured in one run (issue 14):

1. whole-trace JSON: `GET /api/v1/traces/{id}` of a 10,000-span trace (a root, 100 children, the
   rest leaves; ingested over the API), p50 over gunicorn, next to PostgreSQL building the same
   spans as JSON itself (`json_agg` of the rows, fetched by psycopg) on the same database;
2. span ingestion: `POST /api/v1/traces/ingest` (native JSON) and `POST /v1/traces` (OTLP
   protobuf) with batches of 100 and 1,000 new spans from C concurrent clients, spans/s and the
   acknowledgement p50/p99 of a batch, next to `COPY traces_span FROM STDIN` of the same rows (every
   column ingestion writes, the same table and indexes; one transaction per batch, C connections),
   and next to a second floor, COPY of those spans and of their traces' rows (`traces_trace`, its
   indexes): every row ingestion must write. The bench's spans are each in a trace of their own, so
   a batch of 1,000 spans also writes 1,000 trace rows. The written tables are VACUUM ANALYZEd
   before each batch size (autovacuum is off on the development machine), and every server worker
   is warmed (its first masked batch loads the PII recognizers).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/traces_hot.py [--clients 1,4] [--seconds 6]
        [--only trace|ingest] [--big 10000] [--texts same|unique] [--redaction on|off]

`--texts unique` gives every span an input and output of its own (by default every span has the
same two, which ingestion masks once per batch); `--redaction off` turns the bench tenant's
"redact personal data and secrets from traces" setting off for the run (it is on by default).

Server: gunicorn, 2 gthread workers x 4 threads, DEBUG=false (bench/traces.py's command). The load
runs in this process on loopback and shares the machine's cores with gunicorn and PostgreSQL; the
1-minute load average is printed before each measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SLUG = "bench-traces-hot"

# bench/traces.py under another name: `traces` is the Django app.
_spec = importlib.util.spec_from_file_location("bench_traces", ROOT / "bench" / "traces.py")
assert _spec is not None and _spec.loader is not None
bench_traces = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_traces)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


# --- 1. Whole-trace JSON -----------------------------------------------------------------------

FLOOR_SQL = """
SELECT json_agg(s ORDER BY s.started_at, s.id)::text FROM (
  SELECT id, trace_id, span_id, parent_span_id, kind, name, started_at, ended_at, duration_ms, status,
         error_type, error_message, error_stack, input, output, input_truncated, output_truncated, model,
         input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, reported_cost_micros,
         cost_micros, attributes, tags, links, end_user_id, session_id, agent_id, run_id, source, ingested_at
  FROM traces_span WHERE tenant_id = %s AND trace_id = %s
) s
"""


def bench_whole_trace(base: str, key: str, spans: int, n: int) -> dict[str, Any]:
    import psycopg

    from tenants.models import Tenant

    trace_id, _, ingest_seconds = bench_traces.big_trace(base, key, spans)
    tenant_id = Tenant.objects.get(slug=SLUG).pk
    print(f"whole trace: {spans} spans ingested in {ingest_seconds} s; load {load()}", flush=True)
    api_times, floor_times, sizes = [], [], []
    with (
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http,
        psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as pg,
    ):
        http.get(f"/api/v1/traces/{trace_id}")
        pg.execute(FLOOR_SQL, [tenant_id, trace_id]).fetchone()
        for _ in range(n):  # alternate, so both see the same moments of the machine
            t0 = time.perf_counter()
            response = http.get(f"/api/v1/traces/{trace_id}")
            api_times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
            assert len(response.json()["spans"]) == spans
            sizes.append(len(response.content))
            t0 = time.perf_counter()
            row = pg.execute(FLOOR_SQL, [tenant_id, trace_id]).fetchone()
            floor_times.append(time.perf_counter() - t0)
            assert row is not None and row[0]
    return {
        "spans": spans,
        "requests": n,
        "api_p50_ms": round(median_ms(api_times), 1),
        "api_max_ms": round(max(api_times) * 1000, 1),
        "floor_json_agg_p50_ms": round(median_ms(floor_times), 1),
        "response_bytes": sizes[-1],
        "load": load(),
    }


# --- 2. Ingestion --------------------------------------------------------------------------------

COPY_COLUMNS = [
    "tenant_id", "trace_id", "span_id", "parent_span_id", "kind", "name", "started_at", "ended_at", "duration_ms",
    "status", "error_type", "error_message", "error_stack", "input", "output", "input_truncated",
    "output_truncated", "model", "request_model", "input_tokens", "cached_input_tokens", "output_tokens",
    "reasoning_tokens", "reported_cost_micros", "cost_micros", "span_kind", "scope_name", "scope_version",
    "agent_name", "tool_name", "attributes", "tags", "links", "end_user_id", "session_id", "agent_id", "run_id",
    "search_text", "stored_bytes", "source", "ingested_at",
]  # fmt: skip


TEXTS = "same"  # or "unique" (--texts)


def _word() -> str:
    """Letters only: a digit would wake the PII patterns that need one, which the fixed texts do not."""
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))


def unique_texts(body: bytes) -> bytes:
    """A native batch whose spans each get an input and output of their own."""
    document = json.loads(body)
    for item in document["spans"]:
        item["input"] = f"Where is my order {_word()}? Wo ist meine Bestellung {_word()}?"
        item["output"] = f"It ships {_word()} tomorrow."
    return json.dumps(document).encode()


_same_texts_batch = bench_traces.batch


def native_batch(size: int, **kwargs: Any) -> bytes:
    """bench_traces.batch, with an input and output of its own per span under `--texts unique`."""
    body = _same_texts_batch(size, **kwargs)
    return unique_texts(body) if TEXTS == "unique" else body


TRACE_COPY_COLUMNS = [
    "tenant_id", "trace_id", "name", "started_at", "ended_at", "duration_ms", "status", "span_count", "error_count",
    "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_micros",
    "reported_cost_micros", "stored_bytes", "end_user_id", "session_id", "agent_id", "run_id", "models_used", "tags",
    "search_text", "created_at", "updated_at",
]  # fmt: skip


def copy_rows(tenant_id: Any, size: int) -> tuple[str, str]:
    """The span rows a native batch of `size` (native_batch) becomes, and its traces' rows (one
    trace per span), as COPY text."""
    now = datetime.now(UTC)
    lines, traces = [], []
    for item in json.loads(native_batch(size))["spans"]:
        start = datetime.fromisoformat(item["start_time"])
        search = f"{item['name']} {item['input']} {item['output']}"
        row = [
            tenant_id, item["trace_id"], item["span_id"], "", "llm", item["name"], start.isoformat(),
            item["end_time"], "1.0", "unset", "", "", "", json.dumps(item["input"]), json.dumps(item["output"]),
            "f", "f", item["model"], item["model"], 120, 0, 30, 0, r"\N", 1650, "", "", "", "", "", "{}", "{}", "[]",
            item["end_user_id"], item["session_id"], "", "",
            search, 200, "native", now.isoformat(),
        ]  # fmt: skip
        lines.append("\t".join(str(value) for value in row) + "\n")
        trace = [
            tenant_id, item["trace_id"], item["name"], start.isoformat(), item["end_time"], "1.0", "unset", 1, 0,
            120, 0, 30, 0, 1650, 0, 200, item["end_user_id"], item["session_id"], "", "", "{" + item["model"] + "}",
            "{}", search, now.isoformat(), now.isoformat(),
        ]  # fmt: skip
        traces.append("\t".join(str(value) for value in trace) + "\n")
    return "".join(lines), "".join(traces)


def copy_load(tenant_id: Any, size: int, clients: int, seconds: float, *, traces: bool = False) -> dict[str, Any]:
    """COPY batches of `size` fresh span rows for `seconds` from `clients` connections, one
    transaction per batch (the rows are built before the clock starts for each batch); with
    `traces`, their traces' rows too, in the same transaction."""
    import psycopg

    counts = [0] * clients
    cpu = [0.0] * clients
    latencies: list[float] = []

    def client(slot: int) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"]) as pg:
            backend = pg.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            pg.commit()
            started_cpu = CpuMeter.cpu_of(backend)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                spans, trace_rows = copy_rows(tenant_id, size)
                t0 = time.perf_counter()
                with pg.cursor() as cursor:
                    with cursor.copy(f"COPY traces_span ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
                        copy.write(spans)
                    if traces:
                        with cursor.copy(f"COPY traces_trace ({', '.join(TRACE_COPY_COLUMNS)}) FROM STDIN") as copy:
                            copy.write(trace_rows)
                pg.commit()
                latencies.append(time.perf_counter() - t0)
                counts[slot] += size
            cpu[slot] = CpuMeter.cpu_of(backend) - started_cpu

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "spans_per_s": round(sum(counts) / wall),
        "p50_ms": round(median_ms(latencies), 1),
        "p99_ms": round(bench_traces.pct(latencies, 99) * 1000, 1),
        "backend_cpu_s": sum(cpu),
    }


def otlp_batch(size: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = []
    for i in range(size):
        start = now - (size - i) * 1_000_000
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-2024-08-06",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "user.id": f"u{i % 50}",
            "session.id": f"s{i % 20}",
        }
        if TEXTS == "unique":
            attributes["gen_ai.input.messages"] = f"Where is my order {_word()}? Wo ist meine Bestellung {_word()}?"
            attributes["gen_ai.output.messages"] = f"It ships {_word()} tomorrow."
        kv = [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]
        kv += [
            KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=120)),
            KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue(int_value=30)),
        ]
        spans.append(
            Span(
                trace_id=secrets.token_bytes(16),
                span_id=secrets.token_bytes(8),
                name=f"chat step {i}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 1_000_000,
                attributes=kv,
            )
        )
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return request.SerializeToString()


async def otlp_load(base: str, key: str, size: int, clients: int, seconds: float) -> dict[str, Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"}
    latencies: list[float] = []
    errors: list[str] = []
    spans = 0

    async def client() -> None:
        nonlocal spans
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                body = otlp_batch(size)
                t0 = time.perf_counter()
                response = await http.post("/v1/traces", content=body)
                elapsed = time.perf_counter() - t0
                answer = ExportTraceServiceResponse()
                if response.status_code == 200:
                    answer.ParseFromString(response.content)
                if response.status_code != 200 or answer.partial_success.rejected_spans:
                    errors.append(f"{response.status_code} {response.content[:200]!r}")
                    continue
                latencies.append(elapsed)
                spans += size

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    return {
        "spans_per_s": round(spans / wall),
        "p50_ms": round(bench_traces.pct(latencies, 50) * 1000, 1),
        "p99_ms": round(bench_traces.pct(latencies, 99) * 1000, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


INGEST_TABLES = ("traces_span", "traces_trace", "traces_spanpayload", "traces_ingestbatch", "traces_ingestrejection")


def vacuum_analyze() -> None:
    """VACUUM ANALYZE the tables ingestion writes, as autovacuum keeps them in production (this
    machine's PostgreSQL runs without it): run after run they grow by 100,000s of rows, and plans
    made on stale statistics, or a trigram index's pending list grown long, are not what
    ingestion costs."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) " + ", ".join(INGEST_TABLES))


class CpuMeter:
    """CPU time (user + system) of the server's workers and of this database's PostgreSQL
    backends, read from /proc: what a measurement cost the machine, whatever else shares it (on a
    loaded machine spans/s says as much about the neighbours as about ingestion)."""

    def __init__(self, server_pid: int) -> None:
        import psycopg

        self.server_pid = server_pid
        self.workers: set[int] = set()
        self.pg = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()  # fields from the state on (the name may hold spaces)

    def pids(self) -> list[int]:
        self.workers = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (fields := self._stat(int(entry.name))) and int(fields[1]) == self.server_pid:
                self.workers.add(int(entry.name))
        rows = self.pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return [*self.workers, *(row[0] for row in rows)]

    @classmethod
    def cpu_of(cls, pid: int) -> float:
        """CPU seconds (user + system) of process `pid` so far; 0 when it is gone."""
        fields = cls._stat(pid)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0

    def snapshot(self) -> dict[int, float]:
        return {pid: self.cpu_of(pid) for pid in self.pids()}

    def since(self, before: dict[int, float]) -> tuple[float, float]:
        """CPU seconds spent since `before` by the server's workers and by the backends alive now
        (a new one counts whole)."""
        spent = {pid: cpu - before.get(pid, 0.0) for pid, cpu in self.snapshot().items()}
        workers = sum(cpu for pid, cpu in spent.items() if pid in self.workers)
        return workers, sum(spent.values()) - workers


def native_load(base: str, key: str, size: int, clients: int, seconds: float) -> Any:
    return bench_traces.ingest_load(base, key, size, clients, seconds)


def measured[T](meter: CpuMeter, run: Callable[[], T]) -> tuple[T, tuple[float, float]]:
    before = meter.snapshot()
    result = run()
    return result, meter.since(before)


def bench_ingest(base: str, key: str, clients_list: list[int], seconds: float, server_pid: int) -> list[dict[str, Any]]:
    from tenants.models import Tenant

    tenant_id = Tenant.objects.get(slug=SLUG).pk
    cells: list[dict[str, Any]] = []
    cpu_rows: list[tuple[int, int, dict[str, tuple[float, float]]]] = []
    meter = CpuMeter(server_pid)
    # Every gunicorn worker loads the PII recognizers on its first masked batch: warm them all.
    asyncio.run(bench_traces.ingest_load(base, key, 100, 8, 3.0))
    asyncio.run(otlp_load(base, key, 100, 8, 3.0))
    print(
        "\n| batch | clients | native spans/s | ack p50 ms | ack p99 ms | OTLP protobuf spans/s | OTLP p50 ms | "
        "OTLP p99 ms | COPY spans/s | COPY p50 ms | native / COPY | OTLP / COPY | COPY spans+traces spans/s | "
        "native / COPY+traces | OTLP / COPY+traces | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for clients in clients_list:
        for size in (100, 1000):
            vacuum_analyze()
            asyncio.run(bench_traces.ingest_load(base, key, size, clients, 1.0))  # warm-up
            asyncio.run(otlp_load(base, key, size, clients, 1.0))
            started_load = load()
            native, native_cpu = measured(meter, partial(asyncio.run, native_load(base, key, size, clients, seconds)))
            otlp, otlp_cpu = measured(meter, partial(asyncio.run, otlp_load(base, key, size, clients, seconds)))
            floor = copy_load(tenant_id, size, clients, seconds)  # its connections' backends, measured inside
            both = copy_load(tenant_id, size, clients, seconds, traces=True)
            floor_cpu, both_cpu = (0.0, floor.pop("backend_cpu_s")), (0.0, both.pop("backend_cpu_s"))
            cell = {
                "batch": size,
                "clients": clients,
                "native": native,
                "otlp": otlp,
                "copy": floor,
                "copy_traces": both,
            }
            cells.append(cell)
            # CPU ms per 1,000 spans: the server's workers and PostgreSQL's backends.
            per_k = {
                name: (sum(cpu) * 1000 / (result["spans_per_s"] * seconds / 1000), cpu[0] / (sum(cpu) or 1))
                for name, result, cpu in (
                    ("native", native, native_cpu),
                    ("otlp", otlp, otlp_cpu),
                    ("copy", floor, floor_cpu),
                    ("copy_traces", both, both_cpu),
                )
                if result["spans_per_s"]
            }
            cell["cpu_ms_per_1000_spans"] = {name: round(value[0]) for name, value in per_k.items()}
            cpu_rows.append((size, clients, per_k))
            print(
                f"| {size} | {clients} | {native['spans_per_s']:.0f} | {native['p50_ms']:.1f} | "
                f"{native['p99_ms']:.1f} | {otlp['spans_per_s']} | {otlp['p50_ms']} | {otlp['p99_ms']} | "
                f"{floor['spans_per_s']} | {floor['p50_ms']} | {native['spans_per_s'] / floor['spans_per_s']:.0%} | "
                f"{otlp['spans_per_s'] / floor['spans_per_s']:.0%} | {both['spans_per_s']} | "
                f"{native['spans_per_s'] / both['spans_per_s']:.0%} | "
                f"{otlp['spans_per_s'] / both['spans_per_s']:.0%} | "
                f"{started_load}-{load()} |",
                flush=True,
            )
            if native["errors"] or otlp["errors"]:
                print(
                    f"  errors: native {native['errors']} {native['first_error']}; "
                    f"otlp {otlp['errors']} {otlp['first_error']}"
                )
    print(
        "\nCPU ms per 1,000 spans: the server's workers and PostgreSQL's backends (the workers' share in"
        " brackets); COPY: its backend. COPY / ingestion: the share of COPY's spans/s ingestion would reach"
        " were CPU all that counted.\n"
    )
    print("| batch | clients | native | OTLP | COPY | COPY spans+traces | COPY / native | COPY / OTLP |")
    print("|---|---|---|---|---|---|---|---|")
    for size, clients, per_k in cpu_rows:
        native_ms, native_share = per_k.get("native", (0.0, 0.0))
        otlp_ms, otlp_share = per_k.get("otlp", (0.0, 0.0))
        copy_ms, both_ms = per_k.get("copy", (0.0, 0.0))[0], per_k.get("copy_traces", (0.0, 0.0))[0]
        print(
            f"| {size} | {clients} | {native_ms:.0f} ({native_share:.0%}) | {otlp_ms:.0f} ({otlp_share:.0%}) | "
            f"{copy_ms:.0f} | {both_ms:.0f} | {copy_ms / (native_ms or 1):.0%} | {copy_ms / (otlp_ms or 1):.0%} |"
        )
    meter.pg.close()
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--only", choices=("trace", "ingest"))
    parser.add_argument("--texts", choices=("same", "unique"), default="same")
    parser.add_argument("--redaction", choices=("on", "off"), default="on")
    args = parser.parse_args()
    global TEXTS
    TEXTS = args.texts
    if TEXTS == "unique":
        bench_traces.batch = native_batch  # type: ignore[attr-defined]  # what bench_traces.ingest_load sends
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set.")
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 50,
        "STATIC_USE_FINDERS": "true",
        "API_THROTTLE_RATE": "100000000/min",
        "LOG_LEVEL": "WARNING",
        "SECURE_COOKIES": "false",
    }
    os.environ.update(env)
    bench_traces.manage(env, "migrate", "--noinput", "--verbosity", "0", "--skip-checks")
    sys.path.insert(0, str(ROOT / "bench"))
    import traces_seed

    traces_seed.setup_django()
    from django.db import connections

    from tenants.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench: traces hot paths"})
    from guardrails.services import guardrail_settings_update, redacts_traces
    from tenants.audit import Actor

    redaction_was = redacts_traces(tenant)
    guardrail_settings_update(actor=Actor.system_actor("bench"), tenant=tenant, redact_traces=args.redaction == "on")
    print(f"texts: {TEXTS}; the tenant's trace redaction: {args.redaction}")
    connections.close_all()
    key = bench_traces.manage(
        env, "apikey", "create", "--tenant", SLUG, "--name", "bench", "--scopes", "admin", "--replace"
    )
    key = key.strip().splitlines()[-1]
    print(f"{os.cpu_count()} cores, 1-minute load average {load()} at start; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    proc, base = bench_traces.start_server(env, key)
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "trace"):
            results["whole_trace"] = bench_whole_trace(base, key, args.big, args.requests)
            print(f"whole trace {json.dumps(results['whole_trace'])}", flush=True)
        if args.only in (None, "ingest"):
            clients = [int(c) for c in args.clients.split(",")]
            results["ingest"] = bench_ingest(base, key, clients, args.seconds, proc.pid)
    finally:
        bench_traces.stop(proc)
        guardrail_settings_update(actor=Actor.system_actor("bench"), tenant=tenant, redact_traces=redaction_was)
    out = io.StringIO()
    json.dump(results, out, default=str)
    print(out.getvalue()[:4000])


if __name__ == "__main__":
    main()
