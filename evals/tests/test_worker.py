"""Eval runs end to end through a real Celery worker (prefork, a subprocess), real PostgreSQL
(committed: transaction=True) and Redis, with the offline demo model: the run the demo seed
queues executes and becomes the baseline, a run started over the API completes with per-case
results, and a cancel stops a run that is going."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from agents.tests.test_crash import Worker, wait_for
from evals.models import EvalRun, Suite
from evals.tests.conftest import seeded_run
from tenants.models import Scope
from tenants.testing import ApiClient, Cast

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    started = Worker("evals", worker_env, tmp_path / "evals-worker.log")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """A worker on this test's database and Redis, running two cases of a tenant at a time."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"])),
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": django_settings.SECRET_KEY,
        "AOC_VAR_DIR": str(tmp_path / "var"),
        "EVAL_CONCURRENCY_PER_TENANT": "2",
        "PYTHONUNBUFFERED": "1",
    }


def status_of(run_id: Any) -> str:
    return EvalRun.objects.values_list("status", flat=True).get(pk=run_id)


def test_the_seeded_run_and_an_api_run_complete_on_a_real_worker(
    celery_queue: None, cast: Cast, worker: Worker, api: Callable[..., ApiClient]
) -> None:
    seeded = seeded_run(cast)
    wait_for(lambda: status_of(seeded.pk) in EvalRun.FINAL_STATUSES, 120, "the seeded eval run to finish")
    seeded.refresh_from_db()
    assert seeded.status == "succeeded" and seeded.passed_cases == 10, worker.text()[-3000:]
    suite = Suite.objects.for_tenant(cast.acme).get(pk=seeded.suite_id)
    assert suite.baseline_id == seeded.pk

    admin = api(Scope.ADMIN)
    started = admin.post(f"/api/v1/evals/suites/{suite.pk}/runs", {})
    assert started.status_code == 202
    run_id = started.json()["id"]
    wait_for(lambda: status_of(run_id) in EvalRun.FINAL_STATUSES, 120, "the API's eval run to finish")
    detail = admin.get(f"/api/v1/evals/runs/{run_id}").json()
    assert detail["status"] == "succeeded" and len(detail["results"]) == 10
    assert all(r["status"] == "passed" and r["run"] for r in detail["results"])
    assert detail["comparison"]["regressions"] == 0 and detail["comparison"]["pass_rate_delta"] == 0
    assert worker.process.poll() is None


@pytest.fixture
def one_case_at_a_time(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    """A worker running one case of a tenant at a time: a run of ten cases is still going for
    several cases' time after its first ends (two at a time, the cancel below could come after
    the last, under load, and answer 409: nothing left to cancel)."""
    started = Worker("evals", {**worker_env, "EVAL_CONCURRENCY_PER_TENANT": "1"}, tmp_path / "evals-worker.log")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_a_run_cancelled_on_the_worker_keeps_what_ran(
    celery_queue: None, cast: Cast, one_case_at_a_time: Worker, api: Callable[..., ApiClient]
) -> None:
    seeded = seeded_run(cast)
    wait_for(lambda: EvalRun.objects.get(pk=seeded.pk).completed_cases >= 1, 60, "a first case to finish")
    assert status_of(seeded.pk) == "running", "the run ended before the cancel could be sent"
    admin = api(Scope.ADMIN)
    assert admin.post(f"/api/v1/evals/runs/{seeded.pk}/cancel").status_code == 200
    wait_for(lambda: status_of(seeded.pk) == "cancelled", 60, "the run to end cancelled")
    statuses = list(seeded.results.order_by("position").values_list("status", flat=True))
    assert statuses[0] == "passed" and statuses[-1] == "skipped"
    assert "pending" not in statuses and "running" not in statuses
