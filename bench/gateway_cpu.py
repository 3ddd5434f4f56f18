"""Where a gateway call's CPU goes, measured in process (no HTTP, no event loop): the admission
(`gateway.calls.admit`: key, identity, pin, input guardrails, the reservation statement) and the
recorder's work for a concluded call (`gateway.recorder`: settlement, output verdict, spans, the
request-log row), each timed with this thread's CPU clock, then profiled (--profile).

    DATABASE_URL=… REDIS_URL=… .venv/bin/python bench/gateway_cpu.py [--calls 500] [--batch 8] [--profile]

It uses bench/gateway.py's tenant (a provider at an address never called, the default policy, a
tenant budget). The admission runs on this thread with Django's per-request health check, as the
first admission of a connection does; the recorder's records are written in batches of --batch,
as under 8 concurrent clients.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PROVIDER_ALLOWED_HOSTS", "127.0.0.1")
os.environ.setdefault("API_THROTTLE_RATE", "100000000/min")


def _bench_gateway() -> Any:
    spec = importlib.util.spec_from_file_location("bench_gateway", ROOT / "bench" / "gateway.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gateway"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="print a CPU-clock profile of each part")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds, each printed")
    args = parser.parse_args()
    bench = _bench_gateway()
    _, secret = bench.setup("http://127.0.0.1:9/v1")

    from django.db import close_old_connections

    from catalog.clients.base import Usage
    from gateway import calls, recorder

    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    pending: list[Any] = []

    def keep(record: Any, *, tenant_id: Any, endings: Any = None) -> None:  # records kept, written below
        pending.append(recorder._Submitted(record, tenant_id, endings or []))

    calls.recorder.submit = keep

    def admit() -> Any:
        close_old_connections()
        body = {**bench.BODY, "messages": [dict(m) for m in bench.BODY["messages"]]}
        return calls.admit(headers, body, "/v1/chat/completions")

    def conclude(call: Any) -> None:
        calls.conclude(call, calls.Result(content="It ships today.", usage=Usage(12, 4), model_id=bench.EXACT))

    def backend_cpu() -> float:
        """CPU seconds so far of this thread's PostgreSQL backend (the admission and the recorder
        below both use this connection), from /proc: other sessions' work is not counted."""
        from django.db import connection

        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measure(
        profile: cProfile.Profile | None, recorder_profile: cProfile.Profile | None = None
    ) -> tuple[float, float, float, float]:
        admitted: list[Any] = []
        database = backend_cpu()
        started = time.thread_time()
        if profile is not None:
            profile.enable()
        for _ in range(args.calls):
            admitted.append(admit())
        if profile is not None:
            profile.disable()
        admission = (time.thread_time() - started) / args.calls
        admission_database = (backend_cpu() - database) / args.calls
        for call in admitted:
            conclude(call)
        batches = [pending[i : i + args.batch] for i in range(0, len(pending), args.batch)]
        pending.clear()
        database = backend_cpu()
        started = time.thread_time()
        if recorder_profile is not None:
            recorder_profile.enable()
        for batch in batches:
            recorder.recorder._write(batch)
        if recorder_profile is not None:
            recorder_profile.disable()
        recording = (time.thread_time() - started) / args.calls
        return admission, recording, admission_database, (backend_cpu() - database) / args.calls

    measure(None)  # warm: caches, connections, the detectors' compiled patterns
    print(f"# load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    for _ in range(args.rounds):
        admission, recording, admission_database, recording_database = measure(None)
        print(
            f"admission CPU per call {admission * 1000:.2f} ms (PostgreSQL's {admission_database * 1000:.2f})   "
            f"recorder CPU per call {recording * 1000:.2f} ms (PostgreSQL's {recording_database * 1000:.2f})"
        )
    if args.profile:
        profile = cProfile.Profile(time.thread_time)
        recorder_profile = cProfile.Profile(time.thread_time)
        measure(profile, recorder_profile)
        print("# the admission")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        print("# the recorder")
        pstats.Stats(recorder_profile).sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    main()
