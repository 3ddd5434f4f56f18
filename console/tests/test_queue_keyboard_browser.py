"""The approvals queue from the keyboard, in real Chromium (issue 19: "a reviewer decides the right
refund from the queue without opening it, keyboard only"): j and k select a request, a approves
it through the confirmation an irreversible action asks for (Enter confirms, Escape cancels), r
asks for the comment a rejection needs; keys typed into a field do nothing, and a live update
never loses a comment being written. Rows show guardrail findings as badges and an expiry that
counts down."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from approvals import services
from approvals.models import ApprovalRequest
from console.approval_queue import short_id
from console.tests.test_browser import sign_in
from console.tests.test_layout_browser import AXE, LAYOUT_PROBLEMS, ONE_LINE, SCREENSHOTS, WIDTHS
from tenants.audit import Actor
from tenants.testing import Cast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def ask(
    cast: Cast, order: str, reason: str, findings: list[dict[str, Any]] | None = None, **extra: Any
) -> ApprovalRequest:
    """A client's request; with `findings`, as if the console's guardrails had recorded them."""
    approval = services.approval_request_create(
        actor=Actor.system_actor("support bot"),
        tenant=cast.acme,
        action="refund_order",
        arguments={"order_number": order, "reason": reason},
        risk="irreversible",
        reason="irreversible",
        **extra,
    ).approval
    if findings is not None:
        approval.context = {**approval.context, "guardrail_findings": findings}
        approval.save(update_fields=["context"])
    return approval


def open_queue(page: Any) -> None:
    sign_in(page, "bob@acme.test")
    page.goto("/t/acme/approvals/")
    page.wait_for_selector('#live-status[data-state="open"]')


def selected(page: Any) -> str:
    """The selected row's id, checking that it is the one focused and marked current (once the
    page has settled: a live update may redraw the row in the same moment)."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            """() => {
              const rows = document.querySelectorAll(".approval-row.is-selected");
              return rows.length === 1 && document.activeElement === rows[0];
            }""",
            timeout=2000,
        )
    state = page.evaluate(
        """() => {
          const rows = [...document.querySelectorAll(".approval-row.is-selected")];
          return {ids: rows.map((r) => r.id), focused: document.activeElement.id,
                  current: rows.map((r) => r.getAttribute("aria-current"))};
        }"""
    )
    assert len(state["ids"]) == 1 and state["current"] == ["true"], state
    assert state["focused"] == state["ids"][0], state
    return str(state["ids"][0])


def status(approval: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=approval.pk).status


def test_a_reviewer_approves_the_right_refund_from_the_queue_keyboard_only(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    a1003, a1004 = ask(cast, "A-1003", "Keys stick"), ask(cast, "A-1004", "Keys stick")
    bob = page_for()
    open_queue(bob)

    # ? lists the keys; Escape closes the list.
    bob.keyboard.press("?")
    keys = bob.get_by_test_id("queue-keys")
    keys.wait_for()
    assert "approve the selected request" in keys.inner_text()
    bob.keyboard.press("Escape")
    keys.wait_for(state="hidden")

    # j and k move between the pending requests, oldest first, and stop at either end.
    bob.keyboard.press("j")
    assert selected(bob) == f"approval-{a1003.pk}"
    bob.keyboard.press("x")  # x ticks the selected request for bulk approval, and unticks it
    assert bob.locator(f"#select-{a1003.pk}").is_checked()
    bob.keyboard.press("x")
    assert not bob.locator(f"#select-{a1003.pk}").is_checked()
    bob.keyboard.press("j")
    bob.keyboard.press("j")
    assert selected(bob) == f"approval-{a1004.pk}"
    # A focused checkbox is not a text field: the keys still act (from the row it belongs to).
    bob.locator(f"#select-{a1004.pk}").focus()
    bob.keyboard.press("k")
    assert selected(bob) == f"approval-{a1003.pk}"
    bob.keyboard.press("j")
    assert selected(bob) == f"approval-{a1004.pk}"

    bob.evaluate("window.stillTheQueue = true")  # gone if anything reloads or leaves the page
    # a asks to confirm, naming the action, the request and what it does; Escape cancels it.
    bob.keyboard.press("a")
    dialog = bob.get_by_test_id("queue-decide")
    confirm = dialog.get_by_test_id("queue-confirm-approve")
    confirm.wait_for()
    text = dialog.inner_text()
    assert f"Approve refund_order #{short_id(a1004)}? It cannot be undone." in text
    assert "refund $89.99 on A-1004 to lukas.novak@example.com" in text and "A-1003" not in text
    assert bob.evaluate("document.activeElement.dataset.testid") == "queue-confirm-approve"
    bob.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert status(a1003) == status(a1004) == "pending"
    assert selected(bob) == f"approval-{a1004.pk}"

    # a again, and Enter confirms: A-1004 is approved by bob, A-1003 still waits, selected next.
    bob.keyboard.press("a")
    confirm.wait_for()
    bob.keyboard.press("Enter")
    bob.locator(f"#approval-{a1004.pk}").wait_for(state="detached")
    dialog.wait_for(state="hidden")
    decided = ApprovalRequest.objects.get(pk=a1004.pk)
    assert decided.status == "approved" and decided.decided_by == cast.bob
    assert status(a1003) == "pending"
    bob.locator("#messages [data-testid=flash]", has_text=f"Request #{short_id(a1004)} approved.").wait_for()
    assert selected(bob) == f"approval-{a1003.pk}" and bob.evaluate("window.stillTheQueue") is True


def test_r_asks_for_the_comment_and_neither_typing_nor_a_live_update_disturbs_it(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    a1003 = ask(cast, "A-1003", "Wrong size")
    bob = page_for()
    open_queue(bob)

    # Keys typed into a field are text, not shortcuts; Escape leaves the field.
    bulk_note = bob.get_by_label("Note for the selected requests")
    bulk_note.focus()
    bob.keyboard.type("jar?")
    assert bulk_note.input_value() == "jar?"
    assert bob.locator(".approval-row.is-selected").count() == 0 and bob.locator("dialog[open]").count() == 0
    bob.keyboard.press("Escape")

    bob.keyboard.press("j")
    bob.keyboard.press("r")
    note = bob.get_by_test_id("queue-note")
    note.wait_for()
    dialog = bob.get_by_test_id("queue-decide")
    assert f"Reject refund_order #{short_id(a1003)}?" in dialog.inner_text()
    assert "A rejection needs a comment saying why." in dialog.inner_text()
    assert bob.evaluate("document.activeElement.dataset.testid") == "queue-note"
    assert status(a1003) == "pending"

    # Half-way through the comment a new request arrives live: the comment is still there.
    bob.keyboard.type("Duplicate of a request ")
    a1004 = ask(cast, "A-1004", "Keys stick")
    bob.locator(f"#approval-{a1004.pk}").wait_for()
    assert note.input_value() == "Duplicate of a request " and dialog.is_visible()
    bob.keyboard.type("a k j r ? and x.")
    assert note.input_value() == "Duplicate of a request a k j r ? and x."
    assert bob.locator("#queue-keys[open]").count() == 0 and status(a1003) == status(a1004) == "pending"

    bob.keyboard.press("Control+Enter")
    bob.locator(f"#approval-{a1003.pk}").wait_for(state="detached")
    rejected = ApprovalRequest.objects.get(pk=a1003.pk)
    assert rejected.status == "rejected" and rejected.decision_note == "Duplicate of a request a k j r ? and x."
    assert status(a1004) == "pending" and selected(bob) == f"approval-{a1004.pk}"


def test_rows_show_findings_as_badges_and_an_expiry_that_counts_down(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    flagged = ask(
        cast,
        "A-1003",
        "Wrong size",
        findings=[{"reason": "personal data: email address; secret: AWS access key"}],
        expires_in=100,
    )
    bob = page_for()
    open_queue(bob)
    row = bob.locator(f"#approval-{flagged.pk}")
    badges = row.get_by_test_id("row-finding")
    assert badges.all_inner_texts() == ["personal data: email address", "secret: AWS access key"]

    expires = row.get_by_test_id("row-expires")
    first = expires.inner_text()
    assert first.startswith("expires in 1 min") and "is-soon" in (expires.get_attribute("class") or "")
    bob.wait_for_function(
        "([id, text]) => document.querySelector(`#approval-${id} [data-testid=row-expires]`).textContent !== text",
        arg=[str(flagged.pk), first],
    )
    assert expires.inner_text().startswith("expires in 1 min")


@pytest.mark.parametrize("device", list(WIDTHS))
def test_the_queue_its_badges_and_its_dialogs_fit_the_screen_and_pass_axe(
    device: str, page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    long = "personal data: email address; secret: AWS access key; " + "a finding that goes on " * 6
    ask(cast, "A-1003", "Wrong size", findings=[{"reason": long}])
    ask(cast, "A-1004", "Keys stick")
    page = page_for()
    width, height = WIDTHS[device]
    page.set_viewport_size({"width": width, "height": height})
    open_queue(page)
    page.add_script_tag(url="/static/vendor/axe/axe.min.js")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.keyboard.press("j")
    problems: dict[str, list[str]] = {"queue": page.evaluate(LAYOUT_PROBLEMS, ONE_LINE) + page.evaluate(AXE, [])}
    page.screenshot(path=str(SCREENSHOTS / f"approvals-queue-selected-{width}.png"), full_page=True)

    for name, key, ready in (("confirmation", "a", "queue-confirm-approve"), ("shortcuts", "?", "queue-keys")):
        page.keyboard.press("j")
        page.keyboard.press(key)
        page.get_by_test_id(ready).wait_for()
        box = page.locator("dialog[open] article").bounding_box()
        found = page.evaluate(LAYOUT_PROBLEMS, ONE_LINE) + page.evaluate(AXE, [])
        if box is None or box["x"] < 0 or box["x"] + box["width"] > width:
            found.append(f"the {name} dialog does not fit: {box}")
        page.screenshot(path=str(SCREENSHOTS / f"approvals-queue-{name}-{width}.png"), full_page=True)
        problems[name] = found
        page.keyboard.press("Escape")
        page.locator("dialog[open]").wait_for(state="detached")
    assert not any(problems.values()), problems
