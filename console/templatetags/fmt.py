"""The console's one way to print times, money and durations: `{% load fmt %}`.

- `{% when value %}`: a timestamp on one line, relative ("4 min ago", "in 2 h", "3 Dec") with the
  exact time in the tenant's time zone on hover and in `datetime`. The zone is the tenant's
  (`tenant` in the context), UTC outside a tenant: the rule every page states in its footer.
- `{{ micros|usd }}`: integer micro-USD as dollars: "$1,234.56", "$0.45", and for amounts under a
  cent the first significant digits ("$0.0045"), never six zeros. `{{ micros|micro_usd }}` is the
  ledger's exact form ("453 µ$").
- `{{ value|ms }}`, `{{ value|us }}`, `{{ value|seconds }}`: a duration humanised ("412 ms",
  "28.2 s", "4 min 3 s", "1 h 12 min").
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

MICROS_PER_USD = Decimal(1_000_000)
DASH = "—"


# --- Time --------------------------------------------------------------------------------------


def zone_of(context: template.Context | dict[str, Any]) -> zoneinfo.ZoneInfo:
    tenant = context.get("tenant")
    name = getattr(tenant, "timezone", None) or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def relative(value: datetime, now: datetime) -> str:
    """ "just now", "40 s ago", "4 min ago", "3 h ago", "2 d ago" ("in …" ahead); "" past a week."""
    delta = (now - value).total_seconds()
    ahead = delta < 0
    seconds = abs(delta)
    if seconds < 10:
        return "just now"
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    elif seconds < 7 * 86400:
        text = f"{int(seconds // 86400)} d"
    else:
        return ""
    return f"in {text}" if ahead else f"{text} ago"


@register.simple_tag(takes_context=True)
def when(context: template.Context, value: datetime | date | None, empty: str = DASH) -> SafeString | str:
    """`<time>` on one line: relative within a week, else the date; exact (tenant zone) on hover."""
    if value is None or value == "":
        return empty
    zone = zone_of(context)
    if not isinstance(value, datetime):  # a date: no zone, no relative form
        return format_html('<time class="when" datetime="{}">{}</time>', value.isoformat(), _day(value, None))
    if timezone.is_naive(value):
        value = timezone.make_aware(value, zoneinfo.ZoneInfo("UTC"))
    local = value.astimezone(zone)
    now = timezone.now().astimezone(zone)
    exact = f"{local:%Y-%m-%d %H:%M:%S} {zone.key}"
    shown = relative(local, now) or _day(local.date(), now.date()) + f" {local:%H:%M}"
    return format_html('<time class="when" datetime="{}" title="{}">{}</time>', local.isoformat(), exact, shown)


def _day(value: date, today: date | None) -> str:
    if today is not None and value.year == today.year:
        return f"{value.day} {value:%b}"
    return f"{value.day} {value:%b} {value.year}"


@register.simple_tag(takes_context=True)
def exact_time(context: template.Context, value: datetime | None) -> str:
    """The exact time in the tenant's zone, as text ("2026-12-07 14:03:12 Europe/Paris")."""
    if value is None:
        return DASH
    zone = zone_of(context)
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M:%S} {zone.key}"


@register.simple_tag(takes_context=True)
def zone_name(context: template.Context) -> str:
    return zone_of(context).key


# --- Money -------------------------------------------------------------------------------------


def format_usd(micros: int | Decimal | None) -> str:
    """Micro-USD as dollars: cents from one cent up, two significant digits below (exact to the micro)."""
    if micros is None or micros == "":
        return DASH
    amount = Decimal(micros) / MICROS_PER_USD
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount >= Decimal("0.01"):
        cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return f"{sign}${cents:,.2f}"
    # Under a cent: two significant digits, at most the micro-dollar.
    digits = max(2, min(6, -amount.adjusted() + 1))
    return f"{sign}${amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}"


@register.filter
def usd(micros: int | Decimal | None) -> str:
    return format_usd(micros)


@register.filter
def micro_usd(micros: int | None) -> str:
    """The ledger's exact amount: integer micro-dollars with separators."""
    if micros is None or micros == "":
        return DASH
    return f"{int(micros):,} µ$"


# --- Durations ---------------------------------------------------------------------------------


def format_seconds(seconds: float | Decimal | None) -> str:
    if seconds is None or seconds == "":
        return DASH
    seconds = float(seconds)
    if seconds < 0:
        return "-" + format_seconds(-seconds)
    if seconds < 0.001:
        return f"{seconds * 1_000_000:.0f} µs"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(seconds) // 60, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def seconds(value: float | timedelta | None) -> str:
    if isinstance(value, timedelta):
        return format_seconds(value.total_seconds())
    return format_seconds(value)


@register.filter
def ms(value: float | None) -> str:
    return DASH if value is None or value == "" else format_seconds(float(value) / 1000)


@register.filter
def us(value: float | None) -> str:
    return DASH if value is None or value == "" else format_seconds(float(value) / 1_000_000)
