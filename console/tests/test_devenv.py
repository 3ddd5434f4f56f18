"""`make run` (scripts/devenv.py) and its log: the port held from the probe to the server, the
console's own error pages, a 403 in one line, no periodic-task chatter (issue 19)."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def devenv() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devenv", ROOT / "scripts" / "devenv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def held_socket(devenv: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PORT", str(port))
    sock = devenv.bind_port()
    yield sock
    sock.close()


def test_the_port_is_held_from_the_moment_it_is_chosen(devenv: ModuleType, held_socket: socket.socket) -> None:
    port = held_socket.getsockname()[1]
    # Another server starting meanwhile (with SO_REUSEADDR, as uvicorn binds) cannot take it ...
    assert devenv.bind(port) is None
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))
    # ... and a second `make run` asking for it is told so, before it starts anything.
    with pytest.raises(devenv.DevenvError, match=f"port {port} on 127.0.0.1 is busy"):
        devenv.bind_port()


def test_a_busy_default_port_moves_to_the_next(devenv: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    first = devenv.bind_port()
    try:
        second = devenv.bind_port()
        try:
            assert second.getsockname()[1] > first.getsockname()[1] >= devenv.DEFAULT_PORT
        finally:
            second.close()
    finally:
        first.close()


@pytest.mark.django_db(transaction=True)
def test_the_web_server_serves_the_socket_devenv_bound(devenv: ModuleType, held_socket: socket.socket) -> None:
    port = held_socket.getsockname()[1]
    params = connection.settings_dict
    database_url = (
        f"postgresql://{quote(params['USER'] or '')}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
        f"/{params['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "DATABASE_CONN_MAX_AGE": "0"}
    args = devenv.app_processes(held_socket.fileno())["web"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        pass_fds=(held_socket.fileno(),),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    held_socket.close()  # as devenv does once the server has it
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "uvicorn did not answer on the handed socket"
                time.sleep(0.2)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)
        connection.close()


def test_make_run_shows_the_consoles_own_error_pages_unless_debug_is_asked_for(devenv: ModuleType) -> None:
    env = devenv.run_env({}, "http://127.0.0.1:8123")
    assert env["DEBUG"] == "false"
    assert env["SECURE_COOKIES"] == "false"  # plain HTTP on loopback
    assert env["WHITENOISE_AUTOREFRESH"] == "true"
    assert env["CONSOLE_BASE_URL"] == "http://127.0.0.1:8123"
    assert devenv.run_env({"DEBUG": "true"}, "http://127.0.0.1:8123")["DEBUG"] == "true"


def test_make_run_logs_warnings_unless_log_level_says_otherwise(devenv: ModuleType) -> None:
    env = devenv.run_env({}, "http://127.0.0.1:8123")
    assert env["LOG_LEVEL"] == "WARNING"
    processes = devenv.app_processes(3, env["LOG_LEVEL"])
    for name in ("worker", "beat"):
        assert processes[name][processes[name].index("--loglevel") + 1] == "WARNING"
    chatty = devenv.run_env({"LOG_LEVEL": "info"}, "http://127.0.0.1:8123")["LOG_LEVEL"]
    assert chatty == "INFO"
    assert devenv.app_processes(3, chatty)["beat"][-2:] == ["--loglevel", "INFO"]


def test_an_unknown_page_is_the_consoles_404_not_the_url_list(alice_client: Client) -> None:
    response = alice_client.get("/t/acme/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Not found" in page and 'href="/static/console/console.css"' in page
    assert "URLconf" not in page and "DEBUG = True" not in page


def test_a_403_is_logged_in_one_line(client: Client, cast: Any, caplog: pytest.LogCaptureFixture) -> None:
    client.force_login(cast.vera)
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("console:api_keys", args=["acme"]))
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in records] == ["Forbidden (Permission denied): /t/acme/api-keys/"]
    assert records[0].exc_info is None and not records[0].exc_text


def test_periodic_task_chatter_stays_out_of_the_log_but_its_warnings_do_not(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.beat").info(
            "Scheduler: Sending due task %s (%s)", "expire-approvals", "approvals.tasks.expire_due"
        )
        logging.getLogger("celery.app.trace").info(
            "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
            {"name": "tenants.tasks.heartbeat", "id": "x", "runtime": 0.01, "return_value": None},
        )
        logging.getLogger("celery.worker.strategy").info("Task %s[%s] received", "agents.tasks.execute_run", "y")
        logging.getLogger("celery.app.trace").warning("Task %s[%s] retry", "approvals.tasks.expire_due", "z")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Task agents.tasks.execute_run[y] received", "Task approvals.tasks.expire_due[z] retry"]
