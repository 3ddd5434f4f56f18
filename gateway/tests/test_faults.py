"""Faults of the gateway's own process, with real processes: a web process (`uvicorn
config.asgi:application`, as `make run` serves it) is killed with SIGKILL in the middle of a stream.
Nothing in it gets to settle or release: its reservation stays held until its TTL, then beat's
`expire_stale_reservations` releases it, and the ledger still balances (`budgets_verify`).

Two web processes share the test database, as in production behind a load balancer: the one killed
and one that lives on, through which the budget's state is observed as a client sees it. The
provider is FakeUpstream streaming slowly on loopback; everything else is real: PostgreSQL (the
pytest database, committed: transaction=True), Redis, the openai SDK.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.services import budget_expire_stale
from budgets.tasks import expire_stale_reservations
from catalog.fake_upstream import FakeUpstream, Scripted
from gateway.models import GatewayRequest
from gateway.tests.setup import gateway_tenant
from guardrails.services import policy_ensure_default

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
UVICORN = str(Path(sys.executable).parent / "uvicorn")
# Long enough for the stream to start and the survivor to be asked while the hold is live on a
# loaded machine, short enough to wait out.
TTL_SECONDS = 8
MAX_TOKENS = 1000  # the output bound: the worst case is 1,000 tokens at $10/M = 10,000 micro-USD
LIMIT = 15_000  # micro-USD: room for one call's worst case, not two
SLOW_TEXT = " ".join(f"word{i:03d}" for i in range(300))  # 2,399 characters, ~600 tokens


class Web:
    """`uvicorn config.asgi:application` on a free loopback port, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log = log
        command = [UVICORN, "config.asgi:application", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--lifespan", "off", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.name = name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, timeout: float = 60) -> None:
        def up() -> bool:
            assert self.process.poll() is None, self.text()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, f"{self.name} to serve")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no `finally`, no settlement."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def web_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a web process that uses this test's database and Redis, with a short
    reservation TTL."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": django_settings.SECRET_KEY,
        "AOC_VAR_DIR": str(tmp_path / "var"),
        "BUDGET_RESERVATION_TTL_SECONDS": str(TTL_SECONDS),
        "PROVIDER_ALLOWED_HOSTS": "127.0.0.1",  # the fake provider listens on loopback
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def webs(web_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., list[Web]]]:
    started: list[Web] = []

    def start(*names: str) -> list[Web]:
        batch = [Web(name, web_env, tmp_path / f"{name}.log") for name in names]
        started.extend(batch)
        for web in batch:
            web.wait_up()
        return batch

    yield start
    for web in started:
        web.stop()


def ask(client: openai.OpenAI) -> str:
    answer = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Still there?"}], max_tokens=MAX_TOKENS
    )
    return answer.choices[0].message.content or ""


def test_a_web_process_killed_mid_stream_leaves_a_hold_that_expires_by_ttl_and_a_balanced_ledger(
    webs: Callable[..., list[Web]],
) -> None:
    with FakeUpstream() as fake:
        gw = gateway_tenant(fake.base_url)
        policy_ensure_default(tenant=gw.tenant)  # output guardrails on: the stream holds back a window
        budget = Budget.objects.create(tenant=gw.tenant, name="Tiny", period=Budget.Period.DAY, limit=LIMIT)
        doomed, survivor = webs("doomed", "survivor")
        # 60 chunks a quarter second apart: the stream is still open when the process dies.
        fake.queue(Scripted(SLOW_TEXT, chunks=60, chunk_delay=0.25))
        client = openai.OpenAI(base_url=f"{doomed.url}/v1", api_key=gw.secret, max_retries=0, timeout=30)
        stream = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Tell me a long story."}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
        received = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
            if len(received) == 2:
                break
        assert "".join(received).startswith("word000"), received
        doomed.kill()
        # The client is told the answer broke off (an incomplete chunked body), not a clean end.
        with pytest.raises(openai.APIConnectionError):
            for _ in stream:
                pass

        # The hold outlives its process: open, with nothing settled, no request logged.
        (reservation,) = Reservation.objects.for_tenant(gw.tenant)
        assert reservation.status == Reservation.Status.OPEN
        assert reservation.expires_at - reservation.created_at == timedelta(seconds=TTL_SECONDS)
        assert reservation.worst_case_micros <= LIMIT < 2 * reservation.worst_case_micros
        (counter,) = BudgetCounter.objects.for_tenant(gw.tenant).filter(budget=budget)
        assert (counter.settled, counter.reserved) == (0, reservation.worst_case_micros)
        assert not GatewayRequest.objects.for_tenant(gw.tenant).exists()
        # Before its TTL the sweep leaves it alone, and it still holds the budget for every process.
        assert budget_expire_stale(at=reservation.expires_at - timedelta(milliseconds=1)) == 0
        alive = openai.OpenAI(base_url=f"{survivor.url}/v1", api_key=gw.secret, max_retries=0, timeout=30)
        assert timezone.now() < reservation.expires_at, "raise TTL_SECONDS: the machine is slower than assumed"
        with pytest.raises(openai.APIStatusError) as refused:
            ask(alive)
        assert refused.value.status_code == 402 and refused.value.code == "budget_exceeded"

        # Past its TTL, the task beat runs releases it, and the budget admits again.
        wait_for(lambda: timezone.now() > reservation.expires_at, TTL_SECONDS + 5, "the reservation's TTL")
        assert expire_stale_reservations() == 1
        reservation.refresh_from_db()
        assert reservation.status == Reservation.Status.EXPIRED and reservation.actual_micros is None
        assert ask(alive) == "echo: Still there?"
        # The survivor settles that call just after its answer (gateway.recorder), in another process.
        wait_for(
            lambda: LedgerEntry.objects.filter(counter=counter, kind=LedgerEntry.Kind.SETTLE).exists(),
            10,
            "the survivor's settlement of the last call",
        )

    kinds = list(
        LedgerEntry.objects.filter(counter=counter)
        .order_by("id")
        .values_list("kind", "reserved_delta", "settled_delta")
    )
    held = reservation.worst_case_micros
    assert kinds[:2] == [(LedgerEntry.Kind.RESERVE, held, 0), (LedgerEntry.Kind.EXPIRE, -held, 0)]
    assert [kind for kind, _, _ in kinds[2:]] == [LedgerEntry.Kind.RESERVE, LedgerEntry.Kind.SETTLE]
    counter.refresh_from_db()
    assert counter.reserved == 0 and 0 < counter.settled < held
    assert (counter.reserved, counter.settled) == (sum(k[1] for k in kinds), sum(k[2] for k in kinds))
    assert ledger_discrepancies(tenant=gw.tenant) == []
    out = StringIO()
    call_command("budgets_verify", "--tenant", gw.tenant.slug, stdout=out)
    assert "every one equals its ledger" in out.getvalue()
    assert "Traceback" not in survivor.text(), survivor.text()
