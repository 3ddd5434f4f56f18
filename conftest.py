"""Fixtures shared by every app's tests: the cast and API clients. See tenants/testing.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from tenants import rls
from tenants.demo import seed_demo
from tenants.models import Scope, User
from tenants.testing import ApiClient, Cast, make_key

# With TENANT_RLS on, the test database is created and migrated by the owner (this process's
# connections take no role until django_db_setup is done), the tests run as the app role.
if rls.enforcing():
    rls.owner_begin()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, whose teardown first ends the connections that live-server,
    worker and websocket threads may still hold (otherwise DROP DATABASE refuses)."""
    if rls.owner_mode():
        with django_db_blocker.unblock():
            rls.owner_end()
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if rls.enforcing():
            rls.owner_begin()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def _tests_span_tenants() -> Iterator[None]:
    """A test's own setup and checks cross tenants (the cast is in two), as a platform job would:
    for row-level security with TENANT_RLS on, and for the ORM's wall either way (a bare
    `Model.objects` query is allowed where the context crosses tenants: tenants.models). The
    requests, tasks and consumers it drives each set their own tenant (tenants/rls.py), and a
    tenant a test enters outside a request (calling authenticate_key itself, say) ends with it."""
    with rls.across_tenants("a test's setup and checks"):
        yield


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    """Argon2 is the production hasher (see test_it_hashes_passwords_with_argon2); tests need
    speed. The fake providers listen on loopback, which the SSRF guard refuses unless allow-listed
    (tenants/tests/test_net.py and catalog's tests prove the guard with the list emptied)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test's gateway calls are written (gateway.recorder) right after its body, before any
    fixture tears its data down, so no record of one test lands in the next test's tables."""
    try:
        return (yield)
    finally:
        from gateway.recorder import recorder

        if recorder.pending:
            recorder.wait_idle(10)


@pytest.fixture
def celery_queue() -> None:
    """An empty Celery queue, for a test that starts a worker: tasks that earlier transactional tests
    committed wait in Redis for any worker, and would run against this test's data."""
    from config.celery import app

    app.control.purge()


@pytest.fixture
def cast(db: None) -> Cast:
    """The demo cast, without the eval run the seed queues for `make run` (see seed_demo)."""
    tenants = seed_demo(first_eval_run=False)
    users = {u.email.split("@")[0]: u for u in User.objects.all()}
    return Cast(
        acme=tenants["acme"],
        globex=tenants["globex"],
        alice=users["alice"],
        bob=users["bob"],
        vera=users["vera"],
        charlie=users["charlie"],
        staff=users["staff"],
    )


@pytest.fixture
def api(client: Client, cast: Cast) -> Callable[..., ApiClient]:
    """api(scopes="admin", tenant=cast.acme) -> a client holding a fresh key."""

    def make(scopes: str | list[str] = Scope.ADMIN, tenant=None) -> ApiClient:
        _, plaintext = make_key(tenant or cast.acme, scopes)
        return ApiClient(client, plaintext)

    return make


@pytest.fixture
def acme_admin_api(api: Callable[..., ApiClient]) -> ApiClient:
    return api(Scope.ADMIN)


@pytest.fixture
def alice_client(client: Client, cast: Cast) -> Client:
    client.force_login(cast.alice)
    return client


# --- A live ASGI server and a real browser -----------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def live_asgi(transactional_db: None) -> Iterator[str]:
    """The full ASGI application (pages, API, websockets) under uvicorn in a thread, on a free
    loopback port, against the test database. Yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn
    from django.db import connections

    # Requests run in worker threads whose connections would outlive the test and block the
    # test database's teardown: close each at the end of its request.
    conn_max_age = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config("config.asgi:application", host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    # Close what the websocket consumer's and views' shared executor thread still holds open.
    from asgiref.sync import async_to_sync, sync_to_async

    closer = threading.Thread(target=async_to_sync(sync_to_async(connections.close_all, thread_sensitive=True)))
    closer.start()
    closer.join(timeout=10)
    connections.settings["default"]["CONN_MAX_AGE"] = conn_max_age


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; never a downloaded browser. Module-scoped: the
    sync API keeps an event loop running in this thread, which async tests elsewhere need free."""
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); .ci/run installs it")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make in
    # between are ordinary blocking calls, not made from a coroutine.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_for(browser: Any, live_asgi: str) -> Iterator[Callable[[], Any]]:
    """page_for() -> a fresh page in its own browser context (its own cookies), failing on CSP
    violations and script errors so the console stays clean."""
    contexts = []
    errors: list[str] = []

    def make() -> Any:
        context = browser.new_context(base_url=live_asgi)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors
