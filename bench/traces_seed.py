"""Seed one tenant with many traces for the traces benchmarks: COPY straight into traces_span and
traces_trace (the ingest path is measured separately by bench/traces.py; this only fills tables).

    python bench/traces_seed.py [--traces 100000] [--spans-per-trace 10] [--tenant bench-traces] [--reseed]

Each trace: an `agent` root with 9 children (llm and tool spans, one trace in 20 with an error),
spread over the last 20 days, with end users, sessions, agents, models and tags drawn from fixed
pools, and inputs/outputs mixing English, German, Japanese and Russian text; one trace in 1,000
mentions a rare order number (`ORD-<n>`), so searches range from rare to common.
Idempotent: a tenant that already holds the requested number of traces is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PHRASES = [
    "Please refund my order, the kettle arrived broken",
    "Where is my parcel? It has been two weeks",
    "Der Kühlschrank ist kaputt, bitte um Rückerstattung",
    "Können Sie die Lieferung auf Montag verschieben?",
    "冷蔵庫が壊れました。返金をお願いします",
    "注文の配送状況を教えてください",
    "Мой заказ не пришёл, верните деньги",
    "I want to change the shipping address of my order",
    "The invoice shows the wrong VAT number",
    "Cancel my subscription before the next billing date",
]
ANSWERS = [
    "I have refunded the order; you will see it in 3-5 days.",
    "Your parcel is with the carrier and arrives tomorrow.",
    "Die Rückerstattung wurde veranlasst.",
    "返金を手続きしました。",
    "Возврат оформлен.",
    "I could not find that order; can you check the number?",
]
MODELS = ["gpt-4o-2024-08-06", "claude-sonnet-4-2025-05-14", "gemini-2.0-flash-001"]
TOOLS = ["lookup_order", "refund_order", "send_email", "search_kb"]
TAGS = ["prod", "beta", "vip", "eu", "us"]
SPAN_COLUMNS = [
    "tenant_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "kind",
    "name",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
    "error_stack",
    "input",
    "output",
    "input_truncated",
    "output_truncated",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "reported_cost_micros",
    "cost_micros",
    "attributes",
    "tags",
    "links",
    "end_user_id",
    "session_id",
    "agent_id",
    "run_id",
    "search_text",
    "stored_bytes",
    "source",
    "ingested_at",
]
TRACE_COLUMNS = [
    "tenant_id",
    "trace_id",
    "name",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "span_count",
    "error_count",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
    "reported_cost_micros",
    "stored_bytes",
    "end_user_id",
    "session_id",
    "agent_id",
    "run_id",
    "models_used",
    "tags",
    "search_text",
    "created_at",
    "updated_at",
]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/traces_seed.py sets up and checks its own tenants")


def tsv(value: object) -> str:
    if value is None:
        return r"\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def pg_array(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def seed(*, slug: str, traces: int, spans_per_trace: int, reseed: bool, rng: random.Random) -> dict[str, float]:
    from django.db import connection

    from tenants.models import Tenant
    from traces.models import Trace

    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": "Bench: traces"})
    have = Trace.objects.for_tenant(tenant).count()
    if have >= traces and not reseed:
        print(f"{slug}: {have} traces already there; not reseeding", flush=True)
        return {"seconds": 0.0, "traces": float(have)}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("traces_span", "traces_spanpayload", "traces_trace"):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608 - constant names
    now = datetime.now(UTC)
    tenant_id = str(tenant.pk)
    span_lines: list[str] = []
    trace_lines: list[str] = []
    raw = connection.connection if connection.connection else None
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None

    def flush() -> None:
        with raw.cursor() as cur:
            if span_lines:
                with cur.copy(f"COPY traces_span ({', '.join(SPAN_COLUMNS)}) FROM STDIN") as copy:
                    copy.write("".join(span_lines))
            if trace_lines:
                with cur.copy(f"COPY traces_trace ({', '.join(TRACE_COLUMNS)}) FROM STDIN") as copy:
                    copy.write("".join(trace_lines))
        raw.commit()
        span_lines.clear()
        trace_lines.clear()

    for t in range(traces):
        trace_id = f"{rng.getrandbits(128):032x}"
        root_id = f"{rng.getrandbits(64):016x}"
        start = now - timedelta(seconds=rng.uniform(0, 20 * 86400))
        end_user = f"user-{rng.randrange(20_000)}"
        session = f"sess-{rng.randrange(50_000)}"
        agent = f"agent-{rng.randrange(20)}"
        tags = rng.sample(TAGS, rng.randrange(3))
        question = rng.choice(PHRASES) + (f" about ORD-{t // 1000}-{t}" if t % 1000 == 0 else f" (case {t})")
        answer = rng.choice(ANSWERS)
        error = t % 20 == 0
        cursor_ms = 0.0
        totals = {"in": 0, "out": 0, "cost": 0, "bytes": 0}
        models_used: set[str] = set()
        children = []
        for c in range(spans_per_trace - 1):
            llm = c % 2 == 0
            dur = rng.uniform(200, 2500) if llm else rng.uniform(5, 400)
            child_start = start + timedelta(milliseconds=cursor_ms)
            cursor_ms += dur + rng.uniform(1, 20)
            model = rng.choice(MODELS) if llm else ""
            tin, tout = (rng.randrange(200, 4000), rng.randrange(20, 600)) if llm else (0, 0)
            cost = (tin * 2_500_000 + tout * 10_000_000) // 1_000_000 if llm else None
            failed = error and c == spans_per_trace - 2
            name = f"chat {model}" if llm else f"execute_tool {rng.choice(TOOLS)}"
            child_input = (
                question if c == 0 else (json.dumps({"order": f"A-{rng.randrange(10**6)}"}) if not llm else "")
            )
            child_output = answer if c == spans_per_trace - 2 else ""
            search = "\n".join(p for p in (name, child_input, child_output) if p)
            children.append(
                (
                    f"{rng.getrandbits(64):016x}",
                    "llm" if llm else "tool",
                    name,
                    child_start,
                    child_start + timedelta(milliseconds=dur),
                    dur,
                    "error" if failed else "ok",
                    model,
                    tin,
                    tout,
                    cost,
                    child_input,
                    child_output,
                    search,
                )
            )
            if model:
                models_used.add(model)
            totals["in"] += tin
            totals["out"] += tout
            totals["cost"] += cost or 0
            totals["bytes"] += 300 + len(search)
        end = start + timedelta(milliseconds=cursor_ms + 5)
        root_search = f"invoke_agent support\n{question}\n{answer}"
        rows: list[tuple[Any, ...]] = [
            (
                root_id,
                "",
                "agent",
                "invoke_agent support",
                start,
                end,
                cursor_ms + 5,
                "error" if error else "ok",
                "",
                0,
                0,
                None,
                question,
                answer,
                root_search,
            )
        ] + [(sid, root_id, *rest[1:11], rest[11], rest[12], rest[13]) for sid, *rest in [(c[0], *c) for c in children]]
        for span_id, parent, kind, name, s_at, e_at, dur, status, model, tin, tout, cost, sin, sout, search in rows:
            span_lines.append(
                "\t".join(
                    tsv(v)
                    for v in (
                        tenant_id,
                        trace_id,
                        span_id,
                        parent,
                        kind,
                        name,
                        s_at.isoformat(),
                        e_at.isoformat(),
                        dur,
                        status,
                        "TimeoutError" if status == "error" else "",
                        "the tool timed out" if status == "error" else "",
                        "",
                        json.dumps(sin, ensure_ascii=False) if sin else None,
                        json.dumps(sout, ensure_ascii=False) if sout else None,
                        "f",
                        "f",
                        model,
                        tin,
                        0,
                        tout,
                        0,
                        None,
                        cost,
                        "{}",
                        pg_array(tags if parent == "" else []),
                        "[]",
                        end_user,
                        session,
                        agent,
                        "",
                        search,
                        300 + len(search),
                        "native",
                        now.isoformat(),
                    )
                )
                + "\n"
            )
        totals["bytes"] += 300 + len(root_search)
        trace_lines.append(
            "\t".join(
                tsv(v)
                for v in (
                    tenant_id,
                    trace_id,
                    "invoke_agent support",
                    start.isoformat(),
                    end.isoformat(),
                    cursor_ms + 5,
                    "error" if error else "ok",
                    spans_per_trace,
                    2 if error else 0,
                    totals["in"],
                    0,
                    totals["out"],
                    0,
                    totals["cost"],
                    0,
                    totals["bytes"],
                    end_user,
                    session,
                    agent,
                    "",
                    pg_array(sorted(models_used)),
                    pg_array(tags),
                    "\n".join([root_search, *(c[13] for c in children)])[:65536],
                    now.isoformat(),
                    now.isoformat(),
                )
            )
            + "\n"
        )
        if len(trace_lines) >= 5000:
            flush()
            if (t + 1) % 20_000 == 0:
                print(
                    f"  {t + 1} traces ({(t + 1) * spans_per_trace} spans) in {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
    flush()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_span")
        cursor.execute("ANALYZE traces_trace")
    seconds = time.perf_counter() - started
    print(f"seeded {traces} traces, {traces * spans_per_trace} spans in {seconds:.0f} s", flush=True)
    return {"seconds": seconds, "traces": float(traces)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--spans-per-trace", type=int, default=10)
    parser.add_argument("--tenant", default="bench-traces")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    setup_django()
    seed(
        slug=args.tenant,
        traces=args.traces,
        spans_per_trace=args.spans_per_trace,
        reseed=args.reseed,
        rng=random.Random(args.seed),
    )


if __name__ == "__main__":
    main()
