"""Filters for untrusted text (model output, tool results, ingested trace data).

`{{ value|reveal }}` escapes the text and makes the characters a reviewer cannot see visible:
zero-width and other format characters (Unicode category Cf: bidi embeddings, overrides and
isolates, zero-width spaces and joiners, the BOM, tag characters U+E0000 to U+E007F), control
characters other than newline and tab, private-use and unassigned code points, and the invisible
ones Unicode files elsewhere (variation selectors, Hangul fillers, the combining grapheme joiner).
Each becomes a marked `<span class="hidden-char">` naming its code point, so a bidi override
cannot reorder what follows and hidden instructions show.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_VISIBLE_CONTROLS = {"\n", "\t"}
_INVISIBLE_ELSEWHERE = {0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}


def is_hidden(char: str) -> bool:
    """Whether a reviewer could not see `char` as it is."""
    if char.isascii():
        return (char < " " and char not in _VISIBLE_CONTROLS) or char == "\x7f"
    return unicodedata.category(char) in ("Cf", "Cc", "Co", "Cn") or ord(char) in _INVISIBLE_ELSEWHERE


def _marker(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "") or ("CONTROL" if unicodedata.category(char) == "Cc" else "FORMAT CHARACTER")
    return f'<span class="hidden-char" title="{escape(name)}">[{code}]</span>'


def reveal_text(value: Any) -> SafeString:
    """`value` as text, HTML-escaped, with hidden characters shown as markers."""
    text = "" if value is None else str(value)
    if not any(is_hidden(c) for c in text):
        return mark_safe(escape(text))  # noqa: S308 - escaped just above
    out = []
    for char in text:
        out.append(_marker(char) if is_hidden(char) else escape(char))
    return mark_safe("".join(out))  # noqa: S308 - every piece is escaped or a fixed marker


@register.filter
def reveal(value: Any) -> SafeString:
    return reveal_text(value)


def pretty(value: Any) -> str:
    """A JSON value pretty-printed, keys sorted; a string as it is, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def reveal_json(value: Any) -> SafeString:
    """A JSON value pretty-printed (a string as it is), then revealed like `reveal`."""
    return reveal_text(pretty(value))


@register.filter
def has_hidden(value: Any) -> bool:
    """True when the text holds characters `reveal` would mark."""
    return any(is_hidden(c) for c in ("" if value is None else str(value)))
