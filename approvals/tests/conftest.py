"""Fixtures of the approvals tests: a span recorder, and real Celery workers (see agents/tests/test_crash.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from agents import hooks
from agents.tests.test_crash import workers  # noqa: F401  (a fixture, used by test_worker)
from approvals.tests.support import SpanRecorder


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    recorder = SpanRecorder()
    with hooks.registered(recorder):
        yield recorder


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """A worker on this test's database and Redis, sweeping approvals every half second."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": django_settings.SECRET_KEY,
        "AOC_VAR_DIR": str(tmp_path / "var"),
        "APPROVAL_SWEEP_INTERVAL_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
