"""Test helpers: native span items and traces ingested through the real service."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from tenants.models import Tenant
from traces import services
from traces.models import Trace

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def span_item(
    trace_id: str | None = None, span_id: str | None = None, *, offset_ms: int = 0, ms: int = 100, **extra: Any
) -> dict[str, Any]:
    start = T0 + timedelta(milliseconds=offset_ms)
    return {
        "trace_id": trace_id or secrets.token_hex(16),
        "span_id": span_id or secrets.token_hex(8),
        "name": extra.pop("name", "step"),
        "kind": extra.pop("kind", "custom"),
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z"),
        **extra,
    }


def make_trace(tenant: Tenant, *, children: int = 2, **root: Any) -> Trace:
    """A root span with `children` child spans (one llm call among them), ingested."""
    trace_id = secrets.token_hex(16)
    root_id = secrets.token_hex(8)
    items = [span_item(trace_id, root_id, name=root.pop("name", "invoke_agent support"), kind="agent", ms=1000, **root)]
    for i in range(children):
        items.append(
            span_item(
                trace_id,
                parent_span_id=root_id,
                name=f"chat {i}",
                kind="llm",
                offset_ms=10 + i * 100,
                model="gpt-4o-2024-08-06",
                usage={"input_tokens": 100, "output_tokens": 20},
            )
        )
    receipt = services.spans_ingest(tenant=tenant, items=items)
    assert receipt.accepted == len(items), receipt.results
    return Trace.objects.for_tenant(tenant).get(trace_id=trace_id)
