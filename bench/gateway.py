"""The gateway's cost on the path of a model call, side by side in one run with the same fake
provider called directly (and, with --litellm, LiteLLM's proxy in front of the same fake):

1. added latency at 1 client: p50 and p99 of `POST /v1/chat/completions` through the gateway
   (budgets, guardrails and tracing all on: the default policy, a budget on the tenant) minus the
   same request sent to the fake directly;
2. requests/s at 8 and 32 concurrent clients, gateway and direct (and LiteLLM);
3. streaming: time to first content chunk, gateway minus direct, p50 at 1 client.

    python scripts/devenv.py exec -- .venv/bin/python bench/gateway.py            # embedded servers
    python bench/gateway.py [--seconds 5] [--requests 300] [--litellm]           # URLs set

The fake provider is a raw ASGI app under uvicorn in its own process (`--serve-fake PORT`),
answering at once; the gateway is `uvicorn config.asgi:application` in one process, as `make run`
serves it. --litellm starts LiteLLM's proxy from /tmp/litellm-venv (pinned in
bench/litellm/requirements.txt; its config printed with the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


async def fake_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    stream = b'"stream": true' in raw or b'"stream":true' in raw
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


def setup(fake_url: str) -> tuple[str, str]:
    """The bench tenant (reused across runs): a provider at the fake, `default` pinned to a priced
    model, the default guardrail policy, a large daily budget; a gateway key (new each run)."""
    import django

    django.setup()
    from budgets.models import Budget
    from catalog.models import LanguageModel, ModelPin, Provider
    from guardrails.services import policy_ensure_default
    from tenants.models import Scope, Tenant
    from tenants.testing import make_key

    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench gateway"})
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
        defaults={"period": Budget.Period.DAY, "limit": 10**15, "scope": Budget.Scope.TENANT},
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


async def throughput(url: str, headers: dict[str, str], clients: int, seconds: float) -> tuple[float, int]:
    done = errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                response = await client.post(url, json=BODY, headers=headers)
                if response.status_code == 200:
                    done += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed, errors


def ms(values: list[float], p: float) -> float:
    return round(pct(values, p) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-fake", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput figure")
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy (from $LITELLM_VENV)")
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    fake_port, web_port = free_port(), free_port()
    fake = start([sys.executable, __file__, "--serve-fake", str(fake_port)], logdir / "fake.log")
    processes = [fake]
    try:
        wait_up(f"http://127.0.0.1:{fake_port}/", fake, logdir / "fake.log")
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        _, secret = setup(fake_url)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "API_THROTTLE_RATE": "100000000/min",
            "PROVIDER_ALLOWED_HOSTS": "127.0.0.1",
        }
        web_args = ["--lifespan", "off", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
        web = start(
            [
                str(BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
                *web_args,
            ],
            logdir / "web.log",
            env,
        )
        processes.append(web)
        wait_up(f"http://127.0.0.1:{web_port}/healthz", web, logdir / "web.log")
        targets = {
            "direct": (f"{fake_url}/chat/completions", {}),
            "gateway": (f"http://127.0.0.1:{web_port}/v1/chat/completions", {"Authorization": f"Bearer {secret}"}),
        }
        if args.litellm:
            targets["litellm"] = start_litellm(fake_url, logdir, processes)
        print(
            f"# bench/gateway.py: {args.requests} sequential requests per latency, "
            f"{args.seconds:g} s per throughput; logs in {logdir}"
        )
        one: dict[str, list[float]] = {}
        for name, (url, headers) in targets.items():
            body = {**BODY, "model": EXACT} if name == "direct" else BODY
            one[name] = asyncio.run(latencies(url, headers, args.requests, body))
            print(f"1 client   {name:8s} p50 {ms(one[name], 0.5):7.2f} ms   p99 {ms(one[name], 0.99):7.2f} ms")
        for name in targets:
            if name != "direct":
                print(
                    f"added by {name:8s} p50 {ms(one[name], 0.5) - ms(one['direct'], 0.5):7.2f} ms   "
                    f"p99 {ms(one[name], 0.99) - ms(one['direct'], 0.99):7.2f} ms"
                )
        for clients in (int(c) for c in args.clients.split(",")):
            for name, (url, headers) in targets.items():
                if name == "direct":
                    continue
                rate, errors = asyncio.run(throughput(url, headers, clients, args.seconds))
                print(f"{clients:3d} clients {name:8s} {rate:8.1f} requests/s   errors {errors}")
        ttft = {
            name: asyncio.run(first_chunk(url, headers, max(50, args.requests // 3)))
            for name, (url, headers) in targets.items()
            if name != "litellm"
        }
        print(
            f"stream first chunk  direct p50 {ms(ttft['direct'], 0.5):.2f} ms  "
            f"gateway p50 {ms(ttft['gateway'], 0.5):.2f} ms  "
            f"added p50 {ms(ttft['gateway'], 0.5) - ms(ttft['direct'], 0.5):.2f} ms"
        )
        print(f"gateway web process RSS {rss_mib(web.pid):.0f} MiB")
    finally:
        for process in processes:
            stop(process)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_litellm(fake_url: str, logdir: Path, processes: list[subprocess.Popen[bytes]]) -> tuple[str, dict[str, str]]:
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
            "1",
        ],
        logdir / "litellm.log",
        env,
    )
    processes.append(process)
    wait_up(f"http://127.0.0.1:{port}/health/liveliness", process, logdir / "litellm.log")
    return f"http://127.0.0.1:{port}/v1/chat/completions", {"Authorization": "Bearer sk-bench"}


if __name__ == "__main__":
    main()
