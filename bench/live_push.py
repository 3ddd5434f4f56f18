"""What a live push costs its caller (`tenants.events.send_now`: a run step, a console action, a
task announcing a change after commit), and how long the process's pusher takes to send them.

    DATABASE_URL=… REDIS_URL=… .venv/bin/python bench/live_push.py [--pushes 500]

Sends --pushes `run.changed` events to a group nobody listens on through the real channel layer
(Redis), after 50 warm-up ones, timing each call (wall and this thread's CPU), then how long the
pusher takes to send what is still queued (tenants.events.wait_pushed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=500)
    args = parser.parse_args()
    import django

    django.setup()
    from tenants import events

    # A tree from before 2026-12-08 has no wait_pushed: its send_now returned once the push was sent.
    wait_pushed = getattr(events, "wait_pushed", lambda timeout: True)
    event = {"type": "run.changed", "run_id": "bench", "status": "running"}
    for _ in range(50):
        events.send_now("bench-live-push", event)
    wait_pushed(30)
    walls, cpus = [], []
    for _ in range(args.pushes):
        started, cpu = time.perf_counter(), time.thread_time()
        events.send_now("bench-live-push", event)
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
    started = time.perf_counter()
    wait_pushed(60)
    drained = time.perf_counter() - started
    walls.sort()
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(
        f"send_now, {args.pushes} calls: wall p50 {statistics.median(walls) * 1e6:.0f} us,"
        f" p99 {walls[int(len(walls) * 0.99) - 1] * 1e6:.0f} us; caller CPU p50 {statistics.median(cpus) * 1e6:.0f} us;"
        f" the rest sent {drained * 1000:.1f} ms after the last call"
    )


if __name__ == "__main__":
    main()
