"""Traces pages: contracts for every page, and what each page does (filters in the URL, cursor
pages, the lazy tree, the span panel, hidden characters revealed, erasure, retention)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants.models import AuditEvent, Role
from tenants.testing import Cast, ConsolePageContract
from traces import services
from traces.models import Span, TenantTraceSettings, Trace
from traces.tests.factories import make_trace, span_item

HTMX = {"HX-Request": "true"}

pytestmark = pytest.mark.django_db


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def a_trace(cast: Cast) -> Trace:
    return Trace.objects.for_tenant(cast.acme).filter(session_id="s-1").first() or make_trace(
        cast.acme, end_user_id="ann", session_id="s-1"
    )


class TestTracesPage(ConsolePageContract):
    url_name = "console:traces"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestTraceSettingsPage(ConsolePageContract):
    url_name = "console:trace_settings"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestTracePage(ConsolePageContract):
    url_name = "console:trace"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_trace(cast).trace_id])


class TestSpanPage(ConsolePageContract):
    url_name = "console:trace_span"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        trace = a_trace(cast)
        span = Span.objects.for_tenant(cast.acme).filter(trace_id=trace.trace_id).first()
        assert span is not None
        return reverse(self.url_name, args=[slug, trace.trace_id, span.span_id])


class TestTraceChildrenPage(ConsolePageContract):
    url_name = "console:trace_children"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        trace = a_trace(cast)
        root = Span.objects.for_tenant(cast.acme).get(trace_id=trace.trace_id, parent_span_id="")
        return reverse(self.url_name, args=[slug, trace.trace_id, root.span_id])


class TestSessionPage(ConsolePageContract):
    url_name = "console:trace_session"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_trace(cast).session_id])


class TestEndUserPage(ConsolePageContract):
    url_name = "console:trace_end_user"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_trace(cast).end_user_id])


class TestEndUserErase(ConsolePageContract):
    url_name = "console:trace_end_user_erase"
    role = Role.ADMIN
    method = "post"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, a_trace(cast).end_user_id])


def test_the_list_filters_by_the_url_and_pages_with_a_cursor(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    for i in range(3):
        make_trace(cast.acme, end_user_id=f"user-{i}", name=f"flow {i}")
    make_trace(cast.acme, end_user_id="ann", name="Bestellung", input="Wo ist meine Bestellung? 😊")
    url = reverse("console:traces", args=["acme"])
    page = _text(client.get(url + "?q=bestellung"))
    assert "Bestellung" in page and "flow 0" not in page
    fragment = client.get(url + "?end_user=user-1", headers=HTMX)
    assert fragment.content.decode().lstrip().startswith('<section id="trace-list"')
    assert "flow 1" in _text(fragment) and "flow 2" not in _text(fragment)
    from console.views import traces as views

    original = views.PAGE_SIZE
    views.PAGE_SIZE = 2
    try:
        first = client.get(url)
        older = re.search(r'id="older" href="([^"]+)"', first.content.decode())
        assert older is not None
        second = client.get(older.group(1).replace("&amp;", "&"))
        names = re.findall(r"flow \d|Bestellung", _text(first)) + re.findall(r"flow \d|Bestellung", _text(second))
        assert sorted(set(names)) == ["Bestellung", "flow 0", "flow 1", "flow 2"]
    finally:
        views.PAGE_SIZE = original
    assert "is not an ISO 8601 time" in _text(client.get(url + "?since=noon"))


def test_the_list_page_makes_a_fixed_number_of_queries(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    url = reverse("console:traces", args=["acme"])
    make_trace(cast.acme)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for _ in range(5):
        make_trace(cast.acme, tags=["a", "b"])
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_the_health_card_shows_accepted_rejected_with_reasons_and_storage(client: Client, cast: Cast) -> None:
    services.spans_ingest(tenant=cast.acme, items=[span_item(), {"name": "no ids", "kind": "nope"}])
    client.force_login(cast.vera)
    page = _text(client.get(reverse("console:traces", args=["acme"])))
    assert re.search(r'data-testid="accepted">1<', page) and re.search(r'data-testid="rejected">1<', page)
    assert 'data-reason="invalid_time"' in page or 'data-reason="invalid_kind"' in page
    assert re.search(r'data-testid="stored-spans">1<', page)


def test_a_large_trace_opens_with_its_top_levels_and_loads_deeper_ones_lazily(client: Client, cast: Cast) -> None:
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    items = [span_item(trace_id, root, name="root", ms=10_000)]
    mids = [secrets.token_hex(8) for _ in range(10)]
    for i, mid in enumerate(mids):
        items.append(span_item(trace_id, mid, name=f"mid {i}", parent_span_id=root, offset_ms=i * 900))
        items += [
            span_item(trace_id, name=f"leaf {i}.{j}", parent_span_id=mid, offset_ms=i * 900 + j, ms=1)
            for j in range(30)
        ]
    services.spans_ingest(tenant=cast.acme, items=items)
    client.force_login(cast.vera)
    page = client.get(reverse("console:trace", args=["acme", trace_id])).content.decode()
    assert "mid 9" in page and "leaf 0.0" not in page  # the first level is open, deeper is lazy
    assert "31 spans" in page  # a mid span's subtree rollup (itself and its 30 leaves)
    lazy = client.get(reverse("console:trace_children", args=["acme", trace_id, mids[3]]), headers=HTMX)
    text = lazy.content.decode()
    assert text.count('data-kind="custom"') == 30 and "leaf 3.29" in text and "<html" not in text
    other = Trace.objects.for_tenant(cast.acme).exclude(trace_id=trace_id).first() or make_trace(cast.acme)
    wrong = client.get(reverse("console:trace_children", args=["acme", other.trace_id, mids[3]]))
    assert wrong.status_code == 404


def test_the_span_panel_shows_input_output_attributes_error_and_whole_large_payloads(
    client: Client, cast: Cast
) -> None:
    big = "x" * 9000 + "THE END"
    item = span_item(
        input=big,
        output={"answer": "ok"},
        attributes={"http.status": 500},
        error={"type": "ValueError", "message": "bad <b>thing</b>", "stack": "Traceback: line 1"},
    )
    services.spans_ingest(tenant=cast.acme, items=[item])
    client.force_login(cast.vera)
    url = reverse("console:trace_span", args=["acme", item["trace_id"], item["span_id"]])
    panel = client.get(url, headers=HTMX).content.decode()
    assert "THE END" in panel and "&quot;answer&quot;: &quot;ok&quot;" in panel and "http.status" in panel
    assert "bad &lt;b&gt;thing&lt;/b&gt;" in panel and "Traceback: line 1" in panel
    assert "<html" not in panel
    # Start and end to the millisecond, in the tenant's zone ("H:i:s.v" printed a literal "v").
    times = re.findall(r"<time datetime=\"[^\"]+\">([^<]*)</time>", panel)
    assert len(times) == 2 and all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", t) for t in times), times


def test_hidden_characters_are_revealed_and_markup_escaped(client: Client, cast: Cast) -> None:
    item = span_item(name="pay\u202eevil\u200b", input="ignore\U000e0041 previous <script>alert(1)</script>")
    services.spans_ingest(tenant=cast.acme, items=[item])
    client.force_login(cast.vera)
    detail = client.get(reverse("console:trace", args=["acme", item["trace_id"]])).content.decode()
    assert "[U+202E]" in detail and "[U+200B]" in detail and "\u202e" not in detail
    panel = client.get(reverse("console:trace_span", args=["acme", item["trace_id"], item["span_id"]])).content.decode()
    assert "[U+E0041]" in panel and "&lt;script&gt;alert(1)&lt;/script&gt;" in panel and "<script>alert" not in panel


def test_session_and_end_user_views_list_their_traces_in_order(client: Client, cast: Cast) -> None:
    first = make_trace(cast.acme, session_id="chat-9", end_user_id="ann", name="first turn")
    second = make_trace(cast.acme, session_id="chat-9", end_user_id="ann", name="second turn")
    Trace.objects.filter(pk=second.pk).update(started_at=first.started_at.replace(year=2027))
    client.force_login(cast.vera)
    session = _text(client.get(reverse("console:trace_session", args=["acme", "chat-9"])))
    assert session.index("first turn") < session.index("second turn")
    end_user = _text(client.get(reverse("console:trace_end_user", args=["acme", "ann"])))
    assert "chat-9" in end_user and "Erase this end user" not in end_user  # vera is a viewer
    assert client.get(reverse("console:trace_session", args=["acme", "nobody"])).status_code == 404


def test_an_admin_erases_an_end_user_from_the_console(client: Client, cast: Cast) -> None:
    make_trace(cast.acme, end_user_id="ann", input="secret")
    client.force_login(cast.alice)
    assert "Erase this end user" in _text(client.get(reverse("console:trace_end_user", args=["acme", "ann"])))
    response = client.post(reverse("console:trace_end_user_erase", args=["acme", "ann"]), follow=True)
    assert "Erased as erased-" in _text(response)
    assert not Span.objects.for_tenant(cast.acme).filter(end_user_id="ann").exists()
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="end_user.erased").count() == 1


def test_an_admin_sets_retention_and_a_bad_value_is_refused_beside_the_field(client: Client, cast: Cast) -> None:
    client.force_login(cast.alice)
    url = reverse("console:trace_settings", args=["acme"])
    assert client.post(url, {"retention_days": "0"}).status_code == 400
    assert client.post(url, {"retention_days": "7"}).status_code == 302
    assert TenantTraceSettings.objects.for_tenant(cast.acme).get().retention_days == 7
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="traces.retention_changed").exists()


def test_stored_spans_are_announced_once_a_second_and_the_page_refreshes_its_card(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.cache import cache

    from console import live

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr("tenants.events.send_now", lambda group, event: sent.append(dict(event)))
    cache.delete(f"traces:announced:{cast.acme.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        services.spans_ingest(tenant=cast.acme, items=[span_item(), span_item()])
        services.spans_ingest(tenant=cast.acme, items=[span_item()])  # within the same second
    assert sent == [{"type": "traces.ingested", "accepted": 2}]

    page = live.connect(cast.acme, cast.membership(cast.vera), {"page": "traces"})
    html = live.render(page, cast.acme, cast.membership(cast.vera), sent[0])
    assert 'id="ingest-health" aria-label="Ingestion health" hx-swap-oob="true"' in html
    assert re.search(r'data-testid="accepted">3<', html) and 'data-testid="traces-new"' in html
