"""One redaction decision per run page (issue 20): what the output guardrail masked in the answer
is masked wherever it appears on the page, and an admin sees why."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Run, Step
from agents.tests.test_services import make_run
from guardrails.models import GuardrailEvent
from tenants.testing import Cast

EMAIL = "kenji.sato@example.com"


def _redacted_run(cast: Cast) -> Run:
    run = make_run(cast.acme, Run.Status.SUCCEEDED, end_user_id="u1")
    Run.objects.filter(pk=run.pk).update(
        input=f"Refund my order and write to {EMAIL}",
        output="Refunded; a confirmation went to [EMAIL_ADDRESS].",
        messages=[
            {"role": "user", "content": f"Refund my order and write to {EMAIL}"},
            {"role": "assistant", "content": f"Refunded; a confirmation went to {EMAIL}."},
        ],
    )
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=1,
        kind=Step.Kind.TOOL,
        tool_name="send_email",
        call_id="call_1",
        request={"arguments": {"to": EMAIL, "subject": "Refund"}},
        response={"result": {"sent": True, "to": EMAIL}},
    )
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=2,
        kind=Step.Kind.MODEL,
        model_id="gpt-4o-2024-08-06",
        response={"content": f"Refunded; a confirmation went to {EMAIL}."},
    )
    GuardrailEvent.objects.create(
        tenant=cast.acme,
        run=run,
        stage="output",
        action="redact",
        reason="output rule 3 (pii): personal data redacted",
        detectors=["pii"],
        findings=[{"detector": "pii", "type": "EMAIL_ADDRESS", "action": "redact", "score": 1.0}],
    )
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_what_the_answer_masks_is_masked_everywhere_on_the_page_with_the_reason_for_admins(
    cast: Cast, client: Client
) -> None:
    run = _redacted_run(cast)
    url = reverse("console:run", args=[cast.acme.slug, run.pk])
    client.force_login(cast.alice)  # an admin
    page = client.get(url).content.decode()
    assert EMAIL not in page, "the address shows in clear somewhere on the page"
    assert page.count("[EMAIL_ADDRESS]") >= 5  # input, output, tool arguments, result, said, conversation
    assert "Masked on this whole page as in the answer:" in page and "EMAIL_ADDRESS" in page
    assert "output rule 3 (pii): personal data redacted" in page
    client.force_login(cast.vera)  # a viewer: masked too, no reason
    viewer = client.get(url).content.decode()
    assert EMAIL not in viewer and "Masked on this whole page" in viewer
    assert "output rule 3 (pii)" not in viewer


@pytest.mark.django_db
def test_a_run_whose_answer_was_not_masked_shows_its_values_as_they_are(cast: Cast, client: Client) -> None:
    run = _redacted_run(cast)
    GuardrailEvent.objects.filter(run=run).delete()
    client.force_login(cast.alice)
    page = client.get(reverse("console:run", args=[cast.acme.slug, run.pk])).content.decode()
    assert EMAIL in page and "Masked on this whole page" not in page
