"""Races that must not leave a tenant without an admin, proven with real concurrent connections."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tenants import rls, services
from tenants.audit import Actor
from tenants.errors import LastAdminError
from tenants.models import Membership, Role
from tenants.testing import Cast


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(cast: Cast) -> None:
    """Each admin demotes the other in its own connection, released together by a barrier."""
    bob = cast.membership(cast.bob)
    services.member_change_role(actor=Actor(user=cast.alice), membership=bob, role=Role.ADMIN)
    alice = cast.membership(cast.alice)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor_user, target: Membership) -> None:
        try:
            barrier.wait(timeout=10)
            services.member_change_role(actor=Actor(user=actor_user), membership=target, role=Role.VIEWER)
            outcomes.append("demoted")
        except LastAdminError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=rls.carried(demote), args=(cast.alice, bob)),
        threading.Thread(target=rls.carried(demote), args=(cast.bob, alice)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["demoted", "refused"]
    assert Membership.objects.for_tenant(cast.acme).filter(role=Role.ADMIN).count() == 1
