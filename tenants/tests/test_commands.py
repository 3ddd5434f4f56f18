"""Management commands: seed_demo and apikey."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from evals.models import EvalRun
from tenants.models import ApiKey, Membership, Tenant, User
from tenants.testing import ApiClient


@pytest.mark.django_db
def test_seed_demo_is_idempotent() -> None:
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    assert set(Tenant.objects.values_list("slug", flat=True)) == {"acme", "globex"}
    assert User.objects.count() == 5
    roles = dict(Membership.objects.filter(tenant__slug="acme").values_list("user__email", "role"))
    assert roles == {"alice@acme.test": "admin", "bob@acme.test": "reviewer", "vera@acme.test": "viewer"}
    assert Membership.objects.get(tenant__slug="globex").user.email == "charlie@globex.test"
    # `make run`'s seed queues the demo suite's first eval run once per tenant (the tests' cast does not).
    seeded = EvalRun.objects.filter(trigger=EvalRun.Trigger.SEED)
    assert sorted(seeded.values_list("tenant__slug", flat=True)) == ["acme", "globex"]


@pytest.mark.django_db
@pytest.mark.parametrize("scopes", ["runs:write traces:write", "runs:write,traces:write", "runs:write, traces:write"])
def test_apikey_create_prints_a_working_key_once(scopes: str, client: Client) -> None:
    call_command("seed_demo", stdout=StringIO())
    out = StringIO()
    call_command(
        "apikey", "create", "--tenant", "acme", "--name", "ci", "--scopes", scopes, stdout=out, stderr=StringIO()
    )
    plaintext = out.getvalue().strip().splitlines()[-1]
    me = ApiClient(client, plaintext).get("/api/v1/me").json()
    assert me["tenant"]["slug"] == "acme" and me["scopes"] == ["runs:write", "traces:write"]


@pytest.mark.django_db
def test_apikey_create_replace_revokes_the_previous_key() -> None:
    call_command("seed_demo", stdout=StringIO())
    for _ in range(2):
        call_command(
            "apikey",
            "create",
            "--tenant",
            "acme",
            "--name",
            "demo",
            "--scopes",
            "admin",
            "--replace",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    keys = ApiKey.objects.filter(name="demo")
    assert keys.count() == 2 and keys.filter(revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_apikey_create_explains_bad_input() -> None:
    call_command("seed_demo", stdout=StringIO())
    with pytest.raises(CommandError, match="No tenant"):
        call_command("apikey", "create", "--tenant", "nope", "--name", "x", "--scopes", "admin")
    with pytest.raises(CommandError, match="Unknown scope 'root'"):
        call_command("apikey", "create", "--tenant", "acme", "--name", "x", "--scopes", "root")
