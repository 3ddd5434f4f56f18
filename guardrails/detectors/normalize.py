# ruff: noqa: RUF001, RUF002 - this module exists to name look-alike letters (and quotation marks)
"""Undo the obfuscations that keyword scanners miss, keeping a map back to the original offsets.

`views(text)` returns what the detectors scan:

- the skeleton: NFKC/NFKD-folded, invisible characters (zero-width, bidi controls, tag characters,
  variation selectors, soft hyphens: every Unicode "Cf" format character) removed, combining
  accents dropped, confusable look-alikes (Cyrillic "а", Greek "ο", …) mapped to ASCII, and
  letter-spaced words ("i g n o r e", "i.g.n.o.r.e") collapsed. English patterns run on it.
- the Unicode view (only for non-ASCII text): NFKC-folded with the invisible characters removed,
  but letters kept as they are, so patterns in other scripts (Russian, Chinese, …) still match.
- every encoded blob decoded: base64 (standard and URL-safe), hex (plain, `\\x41`, `0x41`
  bytes), URL percent-encoding, HTML numeric entities, and the ASCII hidden in tag characters;
  each decoded text is normalised again (to a depth of two), so base64 inside base64 is read.
- transformations the text itself asks for, and only then (they cost a scan each): the ROT13 of
  a text that mentions ROT13 or a Caesar cipher, the reverse of a text that asks for something
  to be read backwards, and the quoted fragments of a text that asks to combine them ("a='ignore
  all', b='previous instructions'. Do a+b"), joined with and without a space.

A view's `origin[i]` is the index in the original text of its character `i`, so a match in a
view reports the span of the original text it came from; a match in decoded text reports the
whole blob.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus

MAX_DEPTH = 2
MIN_DECODED_CHARS = 6

# Unicode "Cf" covers zero-width spaces and joiners, bidi embeddings/overrides/isolates, the BOM,
# soft hyphen and tag characters; variation selectors are "Mn" and are listed on their own.
_VARIATION_SELECTORS = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_ZERO_WIDTH = {0x00AD, 0x034F, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF}


def is_invisible(char: str) -> bool:
    """True for characters that render as nothing but change what a model reads."""
    code = ord(char)
    if code < 0x80:
        return False
    return code in _VARIATION_SELECTORS or unicodedata.category(char) == "Cf"


def hidden_kind(char: str) -> str:
    """What kind of hidden character `char` is ("" when it is visible): for reasons and for the
    console, which shows each one as a visible marker."""
    code = ord(char)
    if code < 0x80:
        return ""
    if _TAG_FIRST <= code <= _TAG_LAST:
        return "tag"
    if code in _BIDI:
        return "bidi"
    if code in _ZERO_WIDTH or code in _VARIATION_SELECTORS or unicodedata.category(char) == "Cf":
        return "zero-width"
    return ""


@lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    """Non-ASCII character → the ASCII letter or digit it is confusable with (Unicode's
    confusables data as shipped by confusable-homoglyphs), built once."""
    from confusable_homoglyphs import utils

    table: dict[str, str] = {}
    for char, homoglyphs in utils.load("confusables.json").items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in homoglyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[char] = target
                break
    return table


@dataclass(frozen=True)
class View:
    """A text to scan. `origin` maps each character to its index in the original text (with one
    extra entry, the end); `blob` is the original span a decoded view came from."""

    text: str
    origin: tuple[int, ...]
    via: str = ""
    blob: tuple[int, int] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span for this view's [start, end)."""
        if self.blob is not None:
            return self.blob
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1


def _fold(text: str, *, skeleton: bool) -> tuple[str, list[int]]:
    out: list[str] = []
    origin: list[int] = []
    if text.isascii():
        return text, list(range(len(text)))
    table = _confusables() if skeleton else {}
    for index, char in enumerate(text):
        if char.isascii():
            out.append(char)
            origin.append(index)
            continue
        if is_invisible(char):
            continue
        if skeleton:
            for piece in unicodedata.normalize("NFKD", char):
                if unicodedata.combining(piece):
                    continue
                out.append(piece if piece.isascii() else table.get(piece, piece))
                origin.append(index)
        else:
            for piece in unicodedata.normalize("NFKC", char):
                out.append(piece)
                origin.append(index)
    return "".join(out), origin


# Four or more single letters or digits, each followed by the same separator: "i g n o r e",
# "i.g.n.o.r.e", "i-g-n-o-r-e". A wider gap ends a word, so "i g n o r e  a l l" keeps its space,
# and so does another separator: "i-g-n-o-r-e y-o-u-r r-u-l-e-s" is three words.
_SPACED = re.compile(r"(?<![^\W_])[^\W_]([ .\-_*·|/~+])(?:[^\W_]\1){2,}[^\W_](?![^\W_])")


def _collapse_spacing(text: str, origin: list[int]) -> tuple[str, list[int]]:
    if not _SPACED.search(text):
        return text, origin
    out: list[str] = []
    mapped: list[int] = []
    last = 0
    for match in _SPACED.finditer(text):
        out.append(text[last : match.start()])
        mapped.extend(origin[last : match.start()])
        for offset in range(match.start(), match.end()):
            if text[offset].isalnum():
                out.append(text[offset])
                mapped.append(origin[offset])
        last = match.end()
    out.append(text[last:])
    mapped.extend(origin[last:])
    return "".join(out), mapped


# Leetspeak: digits and symbols standing for letters inside words ("1gn0re", "pr3v10us", "@dmin").
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i", "|": "l"}
)
_LEET_HINT = re.compile(r"[A-Za-z][0-9@$!|]|[0-9@$!|][A-Za-z]")  # cheap: a letter next to a leet symbol
_LEET_WORD = re.compile(r"(?<![\w@$!|])(?=[\w@$!|]*[A-Za-z])(?=[\w@$!|]*[0-9@$!|][\w@$!|]*[A-Za-z0-9])[\w@$!|]{3,}")


def _unleet(text: str) -> str | None:
    """`text` with leetspeak words spelled out (same length, so offsets hold), or None when it has
    none. A word qualifies when it mixes letters with leet digits or symbols."""
    if not _LEET_HINT.search(text):
        return None
    found = False

    def spell(match: re.Match[str]) -> str:
        nonlocal found
        word = match.group()
        if word.isdigit() or word.isalpha():
            return word
        found = True
        return word.translate(_LEET)

    result = _LEET_WORD.sub(spell, text)
    return result if found else None


def _with_end(origin: list[int], length: int) -> tuple[int, ...]:
    return (*origin, length)


# --- Encoded blobs --------------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,]?){8,}")
_URL = re.compile(r"[^\s%]*(?:%[0-9A-Fa-f]{2}[^\s%]*){3,}")
_ENTITIES = re.compile(r"(?:&#(?:[xX][0-9A-Fa-f]{1,6}|[0-9]{1,7});\s?){4,}")
_TAGS = re.compile("[\U000e0020-\U000e007e]{4,}")
_MORSE = re.compile(r"(?<![\w.-])(?:[.\-]{1,7}(?:[ \t]{1,3}|\s*/\s*)){7,}[.\-]{1,7}(?![\w.-])")
_MORSE_CODE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h", "..": "i",
    ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p", "--.-": "q", ".-.": "r",
    "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z",
    "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",", "..--..": "?", "-.-.--": "!",
    ".----.": "'", "-..-.": "/", "---...": ":",
}  # fmt: skip


def _readable(text: str) -> bool:
    """Decoded bytes worth scanning: mostly printable text with some letters."""
    if len(text) < MIN_DECODED_CHARS:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in text if c.isalpha())
    return printable >= 0.9 * len(text) and letters >= 0.5 * len(text.replace(" ", "")) and letters >= 4


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _from_base64(blob: str) -> str | None:
    raw = blob.rstrip("=")
    padded = raw + "=" * (-len(raw) % 4)
    try:
        urlsafe = "-" in raw or "_" in raw
        data = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _utf8(data)


def _from_hex(blob: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,]", "", blob)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _utf8(bytes.fromhex(digits))
    except ValueError:
        return None


def _from_morse(blob: str) -> str | None:
    """International Morse: letters separated by one space, words by two or more (or "/")."""
    words = re.split(r"\s*/\s*|[ \t]{2,}", blob.strip())
    decoded = ["".join(_MORSE_CODE.get(letter, "") for letter in word.split()) for word in words if word.strip()]
    return " ".join(decoded)


def _decoded(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, encoding, decoded text) for every readable encoded blob in `text`."""
    found: list[tuple[int, int, str, str]] = []
    for pattern, via, decode in (
        (_BASE64, "base64", _from_base64),
        (_HEX, "hex", _from_hex),
        (_URL, "URL encoding", unquote_plus),
        (_ENTITIES, "HTML entities", html.unescape),
        (_MORSE, "Morse code", _from_morse),
    ):
        if via == "URL encoding" and "%" not in text:
            continue
        if via == "HTML entities" and "&#" not in text:
            continue
        if via == "Morse code" and "-." not in text and ".-" not in text:
            continue
        for match in pattern.finditer(text):
            decoded = decode(match.group().strip())
            if decoded and decoded != match.group() and _readable(decoded):
                found.append((match.start(), match.end(), via, decoded))
    return found


# Cues that a text carries its payload transformed, and the fragments to put back together. They
# run on the lower-cased text, behind a substring test: most texts have none of them.
_ROT13_CUES = ("rot13", "rot-13", "rot 13", "caesar")
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm"
)
_REVERSED_CUE = re.compile(
    r"\bbackwards?\b|\b(?:in\s+)?reverse(?:d)?\s+(?:order|text|it|this|the\s+(?:text|string|letters|words))\b"
)
_JOIN_WORDS = ("combine", "concatenat", "join", "merge", "put together")
_FRAGMENT = re.compile(r"[\"'‘“]([^\"'’”\n]{1,120})[\"'’”]")


def _asks_to_join(text: str, lowered: str) -> bool:
    """A word for joining, or a "+" between two words or letters ("a+b", "X + Y")."""
    if any(word in lowered for word in _JOIN_WORDS):
        return True
    plus = text.find("+")
    while plus != -1:
        if text[max(0, plus - 2) : plus].strip()[-1:].isalnum() and text[plus + 1 : plus + 3].strip()[:1].isalnum():
            return True
        plus = text.find("+", plus + 1)
    return False


def _transformed(skeleton: View, length: int) -> list[View]:
    """The views a cue in the text asks for (ROT13, reversed, joined fragments), each reported
    over the whole text: its parts do not map back one to one."""
    text = skeleton.text
    lowered = text.lower()
    whole = (0, length)
    found: list[View] = []
    if any(cue in lowered for cue in _ROT13_CUES):
        found.append(View(text.translate(_ROT13), skeleton.origin, via="ROT13"))
    if ("backward" in lowered or "reverse" in lowered) and _REVERSED_CUE.search(lowered):
        flipped = text[::-1]
        found.append(View(flipped, tuple(range(len(flipped) + 1)), via="reversed text", blob=whole))
    if _asks_to_join(text, lowered):
        fragments = _FRAGMENT.findall(text)
        if len(fragments) >= 2:
            for glue in ("", " "):
                joined = glue.join(piece.strip() if glue else piece for piece in fragments)
                found.append(View(joined, tuple(range(len(joined) + 1)), via="joined fragments", blob=whole))
    return found


def views(text: str, *, depth: int = 0) -> list[View]:
    """Every view of `text` worth scanning (see the module docstring); the first is the skeleton."""
    folded, origin = _fold(text, skeleton=True)
    folded, origin = _collapse_spacing(folded, origin)
    result = [View(folded, _with_end(origin, len(text)))]
    if (spelled := _unleet(folded)) is not None:
        result.append(View(spelled, result[0].origin, via="leetspeak"))
    if not text.isascii():
        plain, plain_origin = _fold(text, skeleton=False)
        result.append(View(plain, _with_end(plain_origin, len(text)), via="unicode"))
        tags = _TAGS.search(text)
        if tags:
            hidden = "".join(chr(ord(c) - _TAG_FIRST) for c in tags.group())
            result.append(View(hidden, tuple(range(len(hidden) + 1)), via="tag characters", blob=tags.span()))
    if depth == 0:
        result.extend(_transformed(result[0], len(text)))
    if depth < MAX_DEPTH:
        skeleton = result[0]
        for start, end, via, decoded in _decoded(skeleton.text):
            blob = skeleton.span(start, end)
            for inner in views(decoded, depth=depth + 1):
                label = f"{via}, {inner.via}" if inner.via else via
                result.append(View(inner.text, inner.origin, via=label, blob=blob))
    return result


def reveal(text: str) -> str:
    """`text` with every hidden character replaced by a visible marker such as ⟦U+200B⟧ (for
    reviewers: invariant 7)."""
    if text.isascii():
        return text
    return "".join(f"⟦U+{ord(c):04X}⟧" if hidden_kind(c) else c for c in text)


def hidden_characters(text: str) -> dict[str, int]:
    """How many hidden characters of each kind `text` holds."""
    counts: dict[str, int] = {}
    if text.isascii():
        return counts
    for char in text:
        kind = hidden_kind(char)
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
    return counts
