"""The approvals pages: contracts for every route, the queue, a request's page (hidden Unicode
revealed, edits diffed, decisions once), bulk approval, history, autonomy, metrics, rules and the
live fragments the websocket pushes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents import services as agent_services
from agents.models import Agent, Run, Tool
from approvals import services
from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant
from console import live
from console.approval_queue import group_key, short_id
from tenants.audit import Actor
from tenants.models import AuditEvent, Role
from tenants.testing import Cast, ConsolePageContract


def a_request(
    cast: Cast,
    *,
    action: str = "refund_order",
    risk: str = "irreversible",
    findings: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> ApprovalRequest:
    """A client's request; with `findings`, as if the console's guardrails had recorded them (a
    client may not send guardrail_findings itself)."""
    fields: dict[str, Any] = {"arguments": {"order": 1001, "amount": 25}, "reason": "irreversible", **extra}
    approval = services.approval_request_create(
        actor=Actor.system_actor("client"), tenant=cast.acme, action=action, risk=risk, **fields
    ).approval
    if findings is not None:
        approval.context = {**approval.context, "guardrail_findings": findings}
        approval.save(update_fields=["context"])
    return approval


def a_grant(cast: Cast) -> AutonomyGrant:
    AutonomyGrant.objects.filter(tenant=cast.acme, revoked_at__isnull=True).update(revoked_at=timezone.now())
    agent = Agent.objects.get(tenant=cast.acme, name="Support agent")
    tool = Tool.objects.get(tenant=cast.acme, name="send_email")
    return AutonomyGrant.objects.create(tenant=cast.acme, agent=agent, tool=tool, streak=3, granted_by_label="test")


def a_rule(cast: Cast) -> ApprovalRule:
    tool = Tool.objects.get(tenant=cast.acme, name="lookup_order")
    ApprovalRule.objects.filter(tenant=cast.acme, tool=tool).delete()
    return ApprovalRule.objects.create(tenant=cast.acme, tool=tool, mode="always")


class TestQueuePage(ConsolePageContract):
    url_name = "console:approvals"
    role = Role.REVIEWER

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestBadge(TestQueuePage):
    url_name = "console:approvals_badge"


class TestHistoryPage(TestQueuePage):
    url_name = "console:approvals_history"


class TestAutonomyPage(TestQueuePage):
    url_name = "console:approvals_autonomy"


class TestMetricsPage(TestQueuePage):
    url_name = "console:approvals_metrics"


class TestRulesPage(TestQueuePage):
    url_name = "console:approval_rules"


class TestBulkApprove(TestQueuePage):
    url_name = "console:approvals_bulk"
    method = "post"

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"ids": [str(a_request(cast).pk)]}


class TestRequestPage(ConsolePageContract):
    url_name = "console:approval"
    role = Role.REVIEWER
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_request(cast).pk])


class TestDecide(TestRequestPage):
    url_name = "console:approval_decide"
    method = "post"

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"decision": "approve", "note": "ok"}


class TestAutonomyRevoke(ConsolePageContract):
    url_name = "console:autonomy_revoke"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_grant(cast).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"reason": "Incident #4"}


class TestRuleDelete(TestAutonomyRevoke):
    url_name = "console:approval_rule_delete"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_rule(cast).pk])


def _text(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def bob_client(client: Client, cast: Cast) -> Client:
    client.force_login(cast.bob)
    return client


# --- The queue --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_queue_lists_pending_requests_only_in_bounded_queries(
    bob_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    waiting = [a_request(cast, arguments={"n": n}) for n in range(5)]
    decided = a_request(cast)
    services.approval_decide(approval=decided, actor=Actor(user=cast.alice), decision="approve")

    with django_assert_max_num_queries(12):
        response = bob_client.get(reverse("console:approvals", args=["acme"]))

    page = _text(response)
    assert all(f'id="approval-{a.pk}"' in page for a in waiting)
    assert f'id="approval-{decided.pk}"' not in page
    assert 'ws-connect="/ws/t/acme/live/?page=approvals"' in page


@pytest.mark.django_db
def test_the_badge_counts_pending_requests_and_the_nav_loads_it(bob_client: Client, cast: Cast) -> None:
    a_request(cast)
    a_request(cast)

    badge = _text(bob_client.get(reverse("console:approvals_badge", args=["acme"])))
    nav = _text(bob_client.get(reverse("console:dashboard", args=["acme"])))

    assert 'data-count="2"' in badge and ">2</span>" in badge
    assert reverse("console:approvals_badge", args=["acme"]) in nav and 'id="approvals-badge"' in nav


@pytest.mark.django_db
def test_a_viewer_sees_no_approvals_link(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    assert "approvals-badge" not in _text(client.get(reverse("console:dashboard", args=["acme"])))


@pytest.mark.django_db
def test_bulk_approval_takes_one_tool_and_risk_tier_only(bob_client: Client, cast: Cast) -> None:
    same = [a_request(cast, arguments={"n": n}) for n in range(3)]
    other = a_request(cast, action="delete_account")
    url = reverse("console:approvals_bulk", args=["acme"])

    mixed = bob_client.post(url, {"ids": [str(same[0].pk), str(other.pk)], "confirm": "1"}, follow=True)
    assert "one action and one risk tier" in _text(mixed)
    assert ApprovalRequest.objects.filter(status="pending").count() == 4

    bob_client.post(url, {"ids": [str(a.pk) for a in same], "note": "batch", "confirm": "1"})
    statuses = dict(ApprovalRequest.objects.values_list("pk", "status"))
    assert [statuses[a.pk] for a in same] == ["approved"] * 3 and statuses[other.pk] == "pending"


@pytest.mark.django_db
def test_bulk_approval_first_lists_what_it_will_approve_and_approves_nothing(bob_client: Client, cast: Cast) -> None:
    chosen = [a_request(cast, arguments={"order_number": f"A-100{n}"}) for n in (3, 4)]
    url = reverse("console:approvals_bulk", args=["acme"])

    review = bob_client.post(url, {"ids": [str(a.pk) for a in chosen], "note": "batch"})

    page = _text(review)
    assert review.status_code == 200 and "Approve 2 <code>refund_order</code> requests?" in page
    assert all(f"#{short_id(a)}" in page for a in chosen)
    assert "refund $124.00 on A-1003 to amara.okafor@example.com" in page and "on A-1004" in page
    assert 'name="confirm" value="1"' in page and 'value="batch"' in page
    assert ApprovalRequest.objects.filter(status="pending").count() == 2

    done = bob_client.post(url, {"ids": [str(a.pk) for a in chosen], "note": "batch", "confirm": "1"}, follow=True)
    assert f"Approved 2 refund_order requests: #{short_id(chosen[0])}, #{short_id(chosen[1])}." in _text(done)
    assert ApprovalRequest.objects.filter(status="approved").count() == 2


@pytest.mark.django_db
def test_bulk_approval_of_nothing_or_of_nonsense_ids_says_so(bob_client: Client, cast: Cast) -> None:
    url = reverse("console:approvals_bulk", args=["acme"])
    for data in ({}, {"ids": ["not-a-uuid"]}, {"ids": ["not-a-uuid"], "confirm": "1"}):
        response = bob_client.post(url, data, follow=True)
        assert response.status_code == 200 and "Select at least one pending request." in _text(response)


@pytest.mark.django_db
def test_the_bulk_controls_show_only_when_something_is_waiting(bob_client: Client, cast: Cast) -> None:
    url = reverse("console:approvals", args=["acme"])
    assert 'data-testid="bulk-controls" hidden' in _text(bob_client.get(url))
    a_request(cast)
    page = _text(bob_client.get(url))
    assert 'data-testid="bulk-controls">' in page and 'id="queue-empty" hidden' in page


def a_run(cast: Cast, *, end_user: str, text: str) -> Run:
    agent = Agent.objects.get(tenant=cast.acme, name="Support agent")
    return agent_services.run_create(
        actor=Actor(user=cast.alice), tenant=cast.acme, agent=agent, input=text, end_user_id=end_user
    )


def for_run(approval: ApprovalRequest, run: Run) -> ApprovalRequest:
    ApprovalRequest.objects.filter(pk=approval.pk).update(run=run, call_id=f"call-{approval.pk.hex[-6:]}")
    return ApprovalRequest.objects.get(pk=approval.pk)


@pytest.mark.django_db
def test_queue_rows_tell_requests_apart_by_id_arguments_end_user_and_age(bob_client: Client, cast: Cast) -> None:
    first = for_run(
        a_request(cast, arguments={"order_number": "A-1003", "reason": "Wrong size"}),
        a_run(cast, end_user="amara-77", text="Please refund my shoes, order A-1003"),
    )
    second = for_run(
        a_request(cast, arguments={"order_number": "A-1004", "reason": "Keys stick"}),
        a_run(cast, end_user="lukas-12", text="Refund the keyboard A-1004 <b>now</b>"),
    )

    page = _text(bob_client.get(reverse("console:approvals", args=["acme"])))
    rows = {a.pk: page.split(f'id="approval-{a.pk}"')[1].split("</article>")[0] for a in (first, second)}

    assert short_id(first) != short_id(second)
    assert f"#{short_id(first)}" in rows[first.pk] and f"#{short_id(second)}" in rows[second.pk]
    assert "refund $124.00 on A-1003 to amara.okafor@example.com · reason: Wrong size" in rows[first.pk]
    assert "refund $89.99 on A-1004 to lukas.novak@example.com · reason: Keys stick" in rows[second.pk]
    assert "amara-77" in rows[first.pk] and "Please refund my shoes" in rows[first.pk]
    assert "lukas-12" in rows[second.pk] and "&lt;b&gt;now&lt;/b&gt;" in rows[second.pk]
    assert "just now" in rows[first.pk].split('data-testid="row-age">')[1][:120]
    assert 'data-testid="group-header"' not in page


@pytest.mark.django_db
def test_two_requests_for_the_same_call_are_shown_together_with_the_latest_decision(
    bob_client: Client, cast: Cast
) -> None:
    call = {"order_number": "A-1002", "reason": "Late"}
    earlier = a_request(cast, arguments=call)
    services.approval_decide(approval=earlier, actor=Actor(user=cast.alice), decision="reject", note="dup")
    first = for_run(a_request(cast, arguments=call), a_run(cast, end_user="kenji", text="refund A-1002"))
    between = a_request(cast, arguments={"order_number": "A-1001"})
    second = for_run(a_request(cast, arguments=call), a_run(cast, end_user="kenji-2", text="again: refund A-1002"))

    page = _text(bob_client.get(reverse("console:approvals", args=["acme"])))

    group = page.split(f'id="group-{group_key("refund_order", first.arguments_hash)}"')[1].split("</section>")[0]
    assert "2 requests for the same call" in group and "refund $349.50 on A-1002" in group
    assert f'id="approval-{first.pk}"' in group and f'id="approval-{second.pk}"' in group
    assert f'id="approval-{between.pk}"' not in group
    assert "kenji-2" in group and "again: refund A-1002" in group
    assert "The same call was rejected" in group and "by alice@acme.test" in group
    # Groups keep the order of their oldest request: the pair first, then the later single one.
    assert page.index(f'id="approval-{second.pk}"') < page.index(f'id="approval-{between.pk}"')


# --- One request ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_request_page_reveals_hidden_unicode_and_escapes_markup(bob_client: Client, cast: Cast) -> None:
    sneaky = {"to": "ana@example.com", "body": "Refund\u200b approved\u202e <script>alert(1)</script>"}
    approval = a_request(cast, arguments=sneaky, context={"note": "tag\U000e0041 chars"})

    page = _text(bob_client.get(reverse("console:approval", args=["acme", approval.pk])))

    assert 'data-testid="hidden-unicode-warning"' in page
    assert 'title="ZERO WIDTH SPACE">[U+200B]' in page and "[U+202E]" in page and "[U+E0041]" in page
    assert "\u200b" not in page and "\u202e" not in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Irreversible" in page and "Irreversible action" in page


@pytest.mark.django_db
def test_the_decide_form_has_no_default_decision_and_enter_submits_nothing(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast, risk="write")
    page = _text(bob_client.get(reverse("console:approval", args=["acme", approval.pk])))
    form = page.split('id="decide-form"')[1].split("</form>")[0]

    assert "<select" not in form and "checked" not in form
    assert 'name="decision" value="approve"' in form and 'name="decision" value="reject"' in form
    # The first submit button is the one Enter would press: it is disabled, so Enter presses none.
    assert form.index('<button type="submit" disabled hidden') < form.index('name="decision"')

    # A post without a pressed button (what a script or an old form would send) decides nothing.
    response = bob_client.post(reverse("console:approval_decide", args=["acme", approval.pk]), {"note": "looks ok"})
    assert response.status_code == 400 and "Choose a decision: press Approve or Reject." in _text(response)
    assert "looks ok</textarea>" in _text(response)
    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.django_db
def test_a_rejection_without_a_comment_is_refused_next_to_the_field_and_keeps_the_edit(
    bob_client: Client, cast: Cast
) -> None:
    approval = a_request(cast)
    edited = '{"order": 1001, "amount": 3}'
    response = bob_client.post(
        reverse("console:approval_decide", args=["acme", approval.pk]),
        {"decision": "reject", "note": "   ", "arguments": edited},
        headers={"HX-Request": "true"},
    )

    body = _text(response)
    assert response.status_code == 400 and body.lstrip().startswith('<section id="approval-decision"')
    note_field = body.split('id="id_note"')[0].rsplit("<div", 1)[1] + body.split('id="id_note"')[1][:400]
    assert "A rejection needs a comment saying why." in note_field
    assert "&quot;amount&quot;: 3" in body
    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.django_db
def test_approving_an_irreversible_action_asks_to_confirm_it_by_name(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast, arguments={"order_number": "A-1004"})
    url = reverse("console:approval_decide", args=["acme", approval.pk])

    asked = bob_client.post(url, {"decision": "approve", "note": "photos received"}, headers={"HX-Request": "true"})

    body = _text(asked)
    assert asked.status_code == 200 and 'data-testid="decide-confirm"' in body
    assert f"Approve <code>refund_order</code> #{short_id(approval)}? It cannot be undone." in body
    assert "refund $89.99 on A-1004 to lukas.novak@example.com" in body
    assert 'name="confirm" value="approve"' in body and "photos received</textarea>" in body
    approval.refresh_from_db()
    assert approval.status == "pending"

    back = bob_client.post(url, {"cancel": "1", "note": "photos received"}, headers={"HX-Request": "true"})
    assert 'data-testid="decide-confirm"' not in _text(back) and "photos received</textarea>" in _text(back)

    done = bob_client.post(url, {"confirm": "approve", "note": "photos received"})
    assert done.status_code == 302
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decision_note == "photos received"


@pytest.mark.django_db
def test_an_edit_of_an_irreversible_action_confirms_the_edited_arguments(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast, arguments={"order_number": "A-1004"})
    url = reverse("console:approval_decide", args=["acme", approval.pk])

    asked = _text(bob_client.post(url, {"decision": "edit", "arguments": '{"order_number": "A-1003"}'}))
    assert "refund $124.00 on A-1003" in asked.split('data-testid="decide-confirm-summary"')[1].split("</p>")[0]
    assert 'name="arguments" value="{&quot;order_number&quot;: &quot;A-1003&quot;}"' in asked

    bob_client.post(url, {"confirm": "edit", "arguments": '{"order_number": "A-1003"}'})
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.edited_arguments == {"order_number": "A-1003"}


@pytest.mark.django_db
def test_a_write_action_is_approved_by_one_press(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast, action="send_email", risk="write", arguments={"to": "a@example.com"})
    bob_client.post(reverse("console:approval_decide", args=["acme", approval.pk]), {"decision": "approve"})
    approval.refresh_from_db()
    assert approval.status == "approved"


@pytest.mark.django_db
def test_a_reviewer_decides_once_and_a_second_decision_names_who_decided(
    bob_client: Client, cast: Cast, client: Client
) -> None:
    approval = a_request(cast)
    url = reverse("console:approval_decide", args=["acme", approval.pk])

    first = bob_client.post(url, {"confirm": "approve", "note": "fine"})
    assert first.status_code == 302
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == cast.bob

    other = Client()
    other.force_login(cast.alice)
    second = other.post(url, {"decision": "reject", "note": "no"})
    assert second.status_code == 409 and "bob@acme.test" in _text(second)
    assert AuditEvent.objects.filter(tenant=cast.acme, action="approval.approve").count() == 1


@pytest.mark.django_db
def test_an_edit_shows_the_diff_of_the_arguments(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast)
    url = reverse("console:approval_decide", args=["acme", approval.pk])

    bad = bob_client.post(url, {"decision": "edit", "arguments": "{not json"})
    assert bad.status_code == 400 and "Not valid JSON" in _text(bad)
    bob_client.post(url, {"confirm": "edit", "note": "half", "arguments": '{"order": 1001, "amount": 12}'})

    page = _text(bob_client.get(reverse("console:approval", args=["acme", approval.pk])))
    assert 'data-testid="approval-diff"' in page
    assert "<del>-   &quot;amount&quot;: 25" in page and "<ins>+   &quot;amount&quot;: 12" in page


@pytest.mark.django_db
def test_an_htmx_decision_renders_only_the_decision_fragment(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast)
    response = bob_client.post(
        reverse("console:approval_decide", args=["acme", approval.pk]),
        {"confirm": "approve"},
        headers={"HX-Request": "true"},
    )

    body = _text(response)
    assert response.status_code == 200 and body.lstrip().startswith('<section id="approval-decision"')
    assert 'data-status="approved"' in body


# --- Deciding from the queue (its keyboard's a and r) -------------------------------------------


def queue_decide(client: Client, approval: ApprovalRequest, data: dict[str, str], htmx: bool = True) -> Any:
    headers = {"HX-Request": "true"} if htmx else {}
    url = reverse("console:approval_decide", args=["acme", approval.pk])
    return client.post(url, {"from": "queue", **data}, headers=headers)


@pytest.mark.django_db
def test_a_from_the_queue_asks_to_confirm_an_irreversible_approval_in_the_queues_dialog(
    bob_client: Client, cast: Cast
) -> None:
    approval = a_request(cast, arguments={"order_number": "A-1004"})

    asked = queue_decide(bob_client, approval, {"decision": "approve"})

    body = _text(asked)
    assert asked.status_code == 200 and body.lstrip().startswith('<div id="queue-decide-content"')
    assert 'data-asking="approve"' in body and "data-decided" not in body
    assert f'Approve <code>refund_order</code> <span class="short-id">#{short_id(approval)}</span>? It cannot' in body
    assert "refund $89.99 on A-1004 to lukas.novak@example.com" in body
    assert 'name="confirm" value="approve"' in body and 'name="from" value="queue"' in body
    assert 'data-testid="queue-confirm-approve" autofocus' in body
    approval.refresh_from_db()
    assert approval.status == "pending"

    done = queue_decide(bob_client, approval, {"confirm": "approve", "note": "photos"})

    body = _text(done)
    assert done.status_code == 200 and f'data-decided="{approval.pk}"' in body and 'data-status="approved"' in body
    assert "<form" not in body and "<template data-flash>" in body and "approved." in body
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decided_by == cast.bob and approval.decision_note == "photos"


@pytest.mark.django_db
def test_r_from_the_queue_asks_for_the_comment_a_rejection_needs(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast)

    asked = queue_decide(bob_client, approval, {"decision": "reject"})

    body = _text(asked)
    assert asked.status_code == 400 and 'data-asking="reject"' in body
    assert f'Reject <code>refund_order</code> <span class="short-id">#{short_id(approval)}' in body
    assert "A rejection needs a comment saying why." in body
    assert 'name="decision" value="reject"' in body and "required autofocus" in body
    approval.refresh_from_db()
    assert approval.status == "pending"

    done = queue_decide(bob_client, approval, {"decision": "reject", "note": "Duplicate"})
    assert f'data-decided="{approval.pk}"' in _text(done) and 'data-status="rejected"' in _text(done)
    approval.refresh_from_db()
    assert approval.status == "rejected" and approval.decision_note == "Duplicate"


@pytest.mark.django_db
def test_a_write_action_is_approved_from_the_queue_at_once_and_without_htmx_leads_back_to_it(
    bob_client: Client, cast: Cast
) -> None:
    quick = a_request(cast, action="send_email", risk="write", arguments={"to": "a@example.com"})
    plain = a_request(cast, action="send_email", risk="write", arguments={"to": "b@example.com"})

    assert f'data-decided="{quick.pk}"' in _text(queue_decide(bob_client, quick, {"decision": "approve"}))
    back = queue_decide(bob_client, plain, {"decision": "approve"}, htmx=False)

    assert back.status_code == 302 and back["Location"] == reverse("console:approvals", args=["acme"])
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {"approved"}


@pytest.mark.django_db
def test_a_request_decided_meanwhile_answers_the_queue_with_who_decided(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast)
    services.approval_decide(approval=approval, actor=Actor(user=cast.alice), decision="reject", note="no")

    late = queue_decide(bob_client, approval, {"confirm": "approve"})

    body = _text(late)
    assert late.status_code == 409 and "alice@acme.test" in body and 'data-status="rejected"' in body
    assert 'name="confirm"' not in body and "Close</button>" in body


@pytest.mark.django_db
def test_an_edit_posted_from_the_queue_is_never_confirmed_there(bob_client: Client, cast: Cast) -> None:
    approval = a_request(cast, arguments={"order_number": "A-1004"})
    body = _text(queue_decide(bob_client, approval, {"decision": "edit", "arguments": '{"order_number": "A-1003"}'}))
    assert 'data-asking=""' in body and 'name="confirm"' not in body
    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.django_db
def test_queue_rows_show_findings_as_badges_and_the_time_left(bob_client: Client, cast: Cast) -> None:
    findings = [{"reason": "personal data: email address; secret: <b>AWS</b> access key"}]
    flagged = a_request(cast, findings=findings, expires_in=90)
    plain = a_request(cast, arguments={"n": 2}, expires_in=3600)

    page = _text(bob_client.get(reverse("console:approvals", args=["acme"])))
    rows = {a.pk: page.split(f'id="approval-{a.pk}"')[1].split("</article>")[0] for a in (flagged, plain)}

    badges = rows[flagged.pk].split('data-testid="row-finding">')[1:]
    assert [b.split("</span>")[0] for b in badges] == [
        "personal data: email address",
        "secret: &lt;b&gt;AWS&lt;/b&gt; access key",
    ]
    assert 'data-testid="row-finding"' not in rows[plain.pk]
    shown = rows[flagged.pk].split('class="countdown is-soon"')[1].split("</time>")[0]
    assert shown.endswith((">expires in 1 min 29 s", ">expires in 1 min 30 s")), shown
    assert 'class="countdown"' in rows[plain.pk] and 'data-countdown="35' in rows[plain.pk]


def test_the_expiry_reads_to_the_second_under_an_hour() -> None:
    from console.approval_queue import expiry_text

    assert [expiry_text(s) for s in (0, -3, 42, 60, 843, 3600, 7500, 90000, 86400)] == [
        "expired",
        "expired",
        "expires in 42 s",
        "expires in 1 min",
        "expires in 14 min 3 s",
        "expires in 1 h",
        "expires in 2 h 5 min",
        "expires in 1 d 1 h",
        "expires in 1 d",
    ]


# --- History, autonomy, metrics, rules -------------------------------------------------------


@pytest.mark.django_db
def test_history_filters_by_status_and_reviewer(bob_client: Client, cast: Cast) -> None:
    approved = a_request(cast, arguments={"n": 1})
    rejected = a_request(cast, arguments={"n": 2})
    pending = a_request(cast, arguments={"n": 3})
    services.approval_decide(approval=approved, actor=Actor(user=cast.bob), decision="approve")
    services.approval_decide(approval=rejected, actor=Actor(user=cast.alice), decision="reject", note="no")
    url = reverse("console:approvals_history", args=["acme"])

    everything = _text(bob_client.get(url))
    by_alice = _text(bob_client.get(url, {"decided_by": "alice"}))
    pending_only = _text(bob_client.get(url, {"status": "pending"}))

    assert all(f"history-{a.pk}" in everything for a in (approved, rejected, pending))
    assert f"history-{rejected.pk}" in by_alice and f"history-{approved.pk}" not in by_alice
    assert f"history-{pending.pk}" in pending_only and f"history-{approved.pk}" not in pending_only
    assert bob_client.get(url, {"status": "nonsense"}).status_code == 400


@pytest.mark.django_db
def test_the_autonomy_page_shows_grants_and_an_admin_revokes_one(alice_client: Client, cast: Cast) -> None:
    grant = a_grant(cast)
    page = _text(alice_client.get(reverse("console:approvals_autonomy", args=["acme"])))
    assert 'data-testid="grant-row"' in page and "send_email" in page

    refused = alice_client.post(
        reverse("console:autonomy_revoke", args=["acme", grant.pk]), {"reason": ""}, follow=True
    )
    assert "say why autonomy is revoked" in _text(refused)
    alice_client.post(reverse("console:autonomy_revoke", args=["acme", grant.pk]), {"reason": "Incident #7"})

    grant.refresh_from_db()
    assert not grant.is_active and grant.revoke_reason == "Incident #7" and grant.revoked_by_label == "alice@acme.test"


@pytest.mark.django_db
def test_metrics_show_decision_times_and_rates(bob_client: Client, cast: Cast) -> None:
    for n in range(3):
        approval = a_request(cast, arguments={"n": n})
        services.approval_decide(approval=approval, actor=Actor(user=cast.bob), decision="approve")

    page = _text(bob_client.get(reverse("console:approvals_metrics", args=["acme"]), {"period": "24h"}))

    assert 'data-testid="p50"' in page and "—" not in page.split('data-testid="p50"')[1][:20]
    assert "bob@acme.test" in page and "3 (100%)" in page


@pytest.mark.django_db
def test_an_admin_sets_a_rule_and_a_reviewer_cannot(alice_client: Client, cast: Cast, client: Client) -> None:
    url = reverse("console:approval_rules", args=["acme"])
    form = {"mode": "risk", "risk_tiers": ["irreversible", "write"], "quorum": "2", "timeout_seconds": "600"}
    form |= {"on_reject": "end_run", "escalate_at_share": "0.5", "escalation_emails": "ops@example.com"}

    bad = alice_client.post(url, {**form, "quorum": "0"})
    assert bad.status_code == 400
    assert alice_client.post(url, form).status_code == 302
    rule = ApprovalRule.objects.get(tenant=cast.acme)
    assert rule.is_default and rule.quorum == 2 and rule.risk_tiers == ["irreversible", "write"]
    assert rule.escalation_emails == ["ops@example.com"] and rule.on_reject == "end_run"

    bob = Client()
    bob.force_login(cast.bob)
    assert bob.post(url, form).status_code == 403


# --- Live fragments -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_live_queue_appends_a_new_request_and_removes_a_decided_one(cast: Cast) -> None:
    bob = cast.membership(cast.bob)
    connected = live.connect(cast.acme, bob, {"page": "approvals"})
    approval = a_request(cast)
    event = {"type": "approval.changed", "approval_id": str(approval.pk), "status": "pending"}
    group = f"group-{group_key(approval.action, approval.arguments_hash)}"

    arrived = live.render(connected, cast.acme, bob, event)
    assert 'hx-swap-oob="beforeend:#approval-list"' in arrived and f'id="approval-{approval.pk}"' in arrived
    assert f'id="{group}"' in arrived
    assert 'id="approvals-badge"' in arrived and 'data-count="1"' in arrived
    assert 'id="bulk-controls" data-testid="bulk-controls" hx-swap-oob="true"' in arrived  # shown again

    services.approval_decide(approval=approval, actor=Actor(user=cast.alice), decision="approve")
    gone = live.render(connected, cast.acme, bob, {**event, "status": "approved"})
    assert f'<div id="{group}" hx-swap-oob="delete">' in gone and 'data-count="0"' in gone
    assert 'data-testid="bulk-controls" hidden hx-swap-oob="true"' in gone

    vera = cast.membership(cast.vera)
    assert live.render(live.connect(cast.acme, vera, {"page": "approvals"}), cast.acme, vera, event) == ""


@pytest.mark.django_db
def test_a_second_request_for_the_same_call_joins_its_group_live(cast: Cast) -> None:
    bob = cast.membership(cast.bob)
    first = a_request(cast)
    connected = live.connect(cast.acme, bob, {"page": "approvals"})
    second = a_request(cast)

    pushed = live.render(connected, cast.acme, bob, {"type": "approval.changed", "approval_id": str(second.pk)})

    group = f"group-{group_key(first.action, first.arguments_hash)}"
    assert f'<section id="{group}"' in pushed and 'hx-swap-oob="true"' in pushed.split(f'id="{group}"')[1][:200]
    assert "beforeend" not in pushed and "2 requests for the same call" in pushed
    assert f'id="approval-{first.pk}"' in pushed and f'id="approval-{second.pk}"' in pushed
    assert "bulk-controls" not in pushed


@pytest.mark.django_db
def test_the_live_request_page_updates_only_the_status_while_a_comment_may_be_written(cast: Cast) -> None:
    ApprovalRule.objects.create(tenant=cast.acme, mode="always", quorum=2)
    approval = a_request(cast, risk="write", action="send_email")
    bob = cast.membership(cast.bob)
    connected = live.connect(cast.acme, bob, {"page": "approval", "approval": str(approval.pk)})
    event = {"type": "approval.changed", "approval_id": str(approval.pk)}

    services.approval_decide(approval=approval, actor=Actor(user=cast.alice), decision="approve")
    voted = live.render(connected, cast.acme, bob, event)
    assert '<div id="approval-decision-state" hx-swap-oob="true">' in voted and "1 of 2 approvals" in voted
    assert "decide-form" not in voted and 'id="approval-decision"' not in voted

    services.approval_decide(approval=approval, actor=Actor(user=cast.vera), decision="reject", note="no")
    decided = live.render(connected, cast.acme, bob, event)
    assert '<section id="approval-decision" hx-swap-oob="true">' in decided and 'data-status="rejected"' in decided
    assert "decide-form" not in decided


def test_the_edit_box_shows_hidden_characters_as_escapes_that_decode_to_the_same_value() -> None:
    import json

    from console.views.approvals import editable_json

    value = {"body": "Refund\u200b ok\u202e", "tag": "x\U000e0041", "name": "Zoë"}
    text = editable_json(value)

    assert "\\u200b" in text and "\\u202e" in text and "\\udb40\\udc41" in text and "Zoë" in text
    assert not any(c in text for c in "\u200b\u202e\U000e0041")
    assert json.loads(text) == value
