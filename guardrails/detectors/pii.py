"""Personal data: Presidio's analyzer with pattern recognizers only, fully offline, and its
anonymizer for masking.

No NLP model is loaded (Presidio's NoOpNlpEngine: no spaCy model download), so names and
addresses, which need NER, are out of scope; what is found is structured: email addresses, phone
numbers, payment cards, IBANs, US SSNs and IP addresses.

Where Presidio falls short, this module replaces its recognizer:
- email: Presidio validates the domain with `tldextract.extract`, whose default extractor
  downloads the public-suffix list on first use. Ours uses a TLDExtract built with
  `suffix_list_urls=()` and no cache directory: the snapshot bundled in the wheel, never the network.
- payment cards: every major brand's IIN ranges and lengths (Visa, Mastercard incl. 2-series,
  Amex, Diners, Discover, JCB incl. 1800/2131, UnionPay, Maestro, Mir, RuPay, Troy), then Luhn.
- IBAN: case-insensitive, the country's registered length and the ISO 7064 mod-97 checksum.
- phone: Presidio's python-phonenumbers matcher costs ~40 ms per 2 KB (it walks the text once per
  region); a pattern for international and national layouts with 7 to 15 digits is ~100x faster.
  It is not a phone number when it is an ISBN-13 (checksum), a card, a date, a version, or three
  groups of four digits without a country code (an account number's layout).
- IP: Presidio's patterns (IPv4; IPv6 full, compressed, IPv4-mapped and embedded, with a zone),
  except that an IPv4 address inside a longer dotted run ("+33.1.23.45.67.89", "1.2.3.4.5") and
  a compressed IPv6 of one or two decimal groups ("x[1::3]") do not count.

Measured on guardrails/tests/data/pii_formats.json (hand-written: phone numbers of 40+ countries,
2-series Mastercard, IBANs of 44 countries, IPv6 forms, and look-alike negatives): recall 1.0 per
type, 1 negative of 40 flagged (a range "2221-2720", laid out like a local number); before the
two IP rules, the +cc (area) layout and the ISBN and four-by-four rules: 0.967 phone, 0.95 IP, 4.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from guardrails.detectors.base import Finding, excerpt

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
MIN_SCORE = 0.4

# (IIN prefixes as ranges, allowed lengths) per brand.
_CARD_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("Visa", ((4, 4),), (13, 16, 19)),
    ("Mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("American Express", ((34, 34), (37, 37)), (15,)),
    ("Diners Club", ((300, 305), (3095, 3095), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)),
    ("Discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), (16, 17, 18, 19)),
    ("JCB", ((35, 35),), (16, 17, 18, 19)),
    ("JCB", ((1800, 1800), (2131, 2131)), (15,)),
    ("UnionPay", ((62, 62), (81, 81)), (16, 17, 18, 19)),
    ("Maestro", ((50, 50), (56, 59), (63, 63), (67, 67), (6759, 6759), (6761, 6763)), tuple(range(12, 20))),
    ("Mir", ((2200, 2204),), (16, 17, 18, 19)),
    ("RuPay", ((60, 60), (65, 65), (82, 82), (508, 508)), (16,)),
    ("Troy", ((9792, 9792),), (16,)),
)

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    doubled = _LUHN_DOUBLED
    total = sum(map(int, digits[-1::-2])) + sum(doubled[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The brand whose IIN range and length `digits` fits, if its Luhn check digit is right."""
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_valid(digits):
        return None
    for brand, ranges, lengths in _CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return brand
    return None


def iban_valid(value: str) -> bool:
    """Registered length for the country and ISO 7064 mod-97 == 1."""
    iban = re.sub(r"[\s-]", "", value).upper()
    if len(iban) < 15 or _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


@lru_cache(maxsize=1)
def _offline_tldextract() -> Any:
    import tldextract

    # The suffix-list snapshot bundled with tldextract; no URL to fetch, no cache to write.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


_NON_DIGIT = re.compile(r"\D")
_EXTENSION = re.compile(r"(?i)\s*(?:x|ext\.?)\s*\d+$")
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d{1,2}")
# Day-month-year and month-day-year dates (04.12.2026, 12/04/2026).
_DATE_YEAR_LAST = re.compile(r"(?<!\d)\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d(?!\d)")
# A decimal number (seconds with their fraction, 45.123456; a coordinate, 52.5200066).
_DECIMAL = re.compile(r"\d+\.\d+")
# Dotted version strings and OIDs with a one-digit part (10.0.19045.3803, 1.2.840.113549.1.1).
_VERSION = re.compile(r"(?=(?:.*\.)?\d(?:\.|$))\d+(?:\.\d+){2,}")
_ZIP_PLUS_4 = re.compile(r"\d{5}-\d{4}")
_ISBN_SHAPE = re.compile(r"97[89][\s-]?\d{1,5}[\s-]?\d{1,7}[\s-]?\d{1,7}[\s-]?\d")
_FOUR_BY_FOUR = re.compile(r"\d{4}[\s.-]\d{4}[\s.-]\d{4}(?!\d)")


def isbn13_valid(digits: str) -> bool:
    """An ISBN-13 (978 or 979, weights 1 and 3, mod 10): a book, not a phone number."""
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    return sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0


def _needs_colons(text: str) -> bool:
    return text.count(":") >= 2


# Characters a pattern cannot match without: the pattern is skipped on text that lacks them.
_PREREQUISITES: dict[str, Any] = {
    "Email (Medium)": lambda text: "@" in text,
    "IPv4_mapped": _needs_colons,
    "IPv4_embedded": _needs_colons,
    "IPv6": _needs_colons,
    "IPv6_unspecified": lambda text: "::" in text,
}


def _lean(recognizer_class: Any) -> Any:
    """`recognizer_class` with PatternRecognizer's analysis done leaner, to the same verdicts: a
    pattern is skipped on text that lacks a character it needs (_PREREQUISITES), no explanation
    is built per match (the analyzer drops them unless asked for its decision process), and
    duplicates are removed once, by the analyzer, not also per recognizer. On PII-dense text,
    most of Presidio's time went to that per-match bookkeeping."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult
    from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS
    from regex import compile as compile_regex

    class Lean(recognizer_class):
        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
        ) -> list[Any]:
            flags = regex_flags or self.global_regex_flags
            entity = self.supported_entities[0]
            metadata = {
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            }
            results = []
            for pattern in self.patterns:
                needs = _PREREQUISITES.get(pattern.name)
                if needs is not None and not needs(text):
                    continue
                if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
                    pattern.compiled_with_flags = flags
                    pattern.compiled_regex = compile_regex(pattern.regex, flags=flags)
                try:
                    for match in pattern.compiled_regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
                        start, end = match.span()
                        if start == end:
                            continue
                        matched = text[start:end]
                        score = pattern.score
                        valid = self.validate_result(matched)
                        if valid is not None:
                            score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
                        if self.invalidate_result(matched):
                            score = EntityRecognizer.MIN_SCORE
                        if score > EntityRecognizer.MIN_SCORE:
                            results.append(
                                RecognizerResult(entity, start, end, score, recognition_metadata=dict(metadata))
                            )
                except TimeoutError:
                    logger.warning("PII pattern %r timed out; skipped", pattern.name)
            # Not deduplicated here: the analyzer removes duplicates over every recognizer's
            # results after dropping low scores, which gives the same answer once.
            return results

    Lean.__name__ = Lean.__qualname__ = recognizer_class.__name__
    return Lean


def _recognizers() -> list[Any]:
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer, UsSsnRecognizer

    @_lean
    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(_offline_tldextract()(pattern_text.rsplit("@", 1)[-1]).suffix)

    @_lean
    class CardRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return card_brand(re.sub(r"[\s-]", "", pattern_text)) is not None

    @_lean
    class IbanRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return iban_valid(pattern_text)

    @_lean
    class PhoneRecognizer(PatternRecognizer):
        def invalidate_result(self, pattern_text: str) -> bool:
            digits = _NON_DIGIT.sub("", _EXTENSION.split(pattern_text)[0])
            if not 7 <= len(digits) <= 15:
                return True
            # Shapes that belong to other entities or are not phone numbers at all.
            if _SSN_SHAPE.fullmatch(pattern_text) or _IPV4_SHAPE.fullmatch(pattern_text) or _DATE.search(pattern_text):
                return True
            if _DATE_YEAR_LAST.search(pattern_text) or _ZIP_PLUS_4.fullmatch(pattern_text):
                return True
            if _DECIMAL.fullmatch(pattern_text) or _VERSION.fullmatch(pattern_text):
                return True
            if _ISBN_SHAPE.fullmatch(pattern_text) and isbn13_valid(digits):
                return True
            # Groups of four digits, three or more without a country code: a card's or an account
            # number's layout (a bank account beside a mistyped IBAN), not a phone number's.
            return bool(card_brand(digits)) or bool(_FOUR_BY_FOUR.match(pattern_text))

    @_lean
    class IpAddressRecognizer(IpRecognizer):
        def invalidate_result(self, pattern_text: str) -> bool:
            if super().invalidate_result(pattern_text):
                return True
            # A compressed IPv6 address of one or two groups of decimal digits and no IPv4 part
            # ("::2", "1::3") is far likelier a slice or a ratio than an address ("fe80::1" stays).
            address = pattern_text.split("%")[0].split("/")[0]
            groups = [g for g in address.split(":") if g]
            return "::" in address and len(groups) < 3 and all(g.isdigit() for g in groups)

    card = CardRecognizer(
        supported_entity="CREDIT_CARD",
        patterns=[Pattern("card", r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])", 0.5)],
        context=["card", "credit", "visa", "mastercard", "amex", "payment"],
    )
    iban = IbanRecognizer(
        supported_entity="IBAN_CODE",
        patterns=[
            Pattern(
                "iban",
                # Compact, or printed in groups of four (groups after the bank code hold a digit, so
                # a following word is not taken for one).
                r"(?i)(?<![a-z0-9])[a-z]{2}\d{2}(?:[a-z0-9]{11,30}|[ -][a-z0-9]{4}(?:[ -](?=[a-z]*\d)[a-z0-9]{4}){1,6}"
                r"(?:[ -](?=[a-z]*\d)[a-z0-9]{1,3})?)(?![a-z0-9])",
                0.5,
            )
        ],
        context=["iban", "bank", "account"],
    )
    phone = PhoneRecognizer(
        supported_entity="PHONE_NUMBER",
        patterns=[
            Pattern(
                "phone",
                # Not the seconds of a time (13:19:45.123456) nor the hours before its minutes.
                r"(?<![\w+.-])(?<!\d:)(?:\+\d{1,3}[\s.-]?(?:\(0\)\s?|\(\d{1,5}\)\s?)?|\(\d{1,5}\)\s?)?\d{1,5}(?:[\s.-]\(?\d{1,7}\)?){1,5}"
                r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w-]|:\d)|(?<![\w+])\+\d{9,14}(?!\w)|(?<!\w)\(\d{2,5}\)\s?\d{3,4}[\s.-]?\d{3,4}(?:x\d{1,6})?(?!\w)",
                0.5,
            )
        ],
        context=["phone", "call", "mobile", "tel", "cell", "fax", "number"],
    )
    ip_patterns = [
        # An IPv4 address is not part of a longer dotted run: "+33.1.23.45.67.89" is a phone
        # number, "1.2.3.4.5" a version.
        Pattern(p.name, r"(?<![+.\d])" + p.regex + r"(?!\.\d)", p.score) if p.name == "IPv4" else p
        for p in IpRecognizer.PATTERNS
    ]
    ip = IpAddressRecognizer(patterns=ip_patterns)
    return [OfflineEmailRecognizer(), card, iban, phone, _lean(UsSsnRecognizer)(), ip]


@lru_cache(maxsize=1)
def analyzer() -> AnalyzerEngine:
    """The shared analyzer (built once per process; analyze() keeps no state between calls)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    class NoContextEnhancer(ContextAwareEnhancer):
        """Context words need the NLP engine's tokens, which the no-op engine does not produce;
        Presidio's default enhancer would only deep-copy every result (most of a dense text's
        analysis time) to change nothing."""

        def __init__(self) -> None:
            super().__init__(
                context_similarity_factor=0,
                min_score_with_context_similarity=0,
                context_prefix_count=0,
                context_suffix_count=0,
            )

        def enhance_using_context(self, text: str, raw_results: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
            return raw_results

    # Presidio logs every recognizer it loads at INFO, in each process: keep its warnings only.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    registry = RecognizerRegistry(recognizers=_recognizers(), supported_languages=["en"])
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
        supported_languages=["en"],
        default_score_threshold=MIN_SCORE,
        context_aware_enhancer=NoContextEnhancer(),
    )


@lru_cache(maxsize=1)
def anonymizer() -> AnonymizerEngine:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


@dataclass(frozen=True)
class _Step:
    """One pattern of one recognizer, ready to run: what detect() loops over."""

    entity: str
    regex: Any
    ascii_regex: Any  # the same pattern compiled by `re`, for ASCII text (see _ascii_regex), or None
    score: float
    best: float  # the highest score a match can get (1.0 when a validator may confirm it)
    needs: Any  # a cheap test of the text, or None
    validate: Any
    invalidate: Any


def _has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None


_DIGIT = re.compile(r"\d")


# Patterns that `re` runs several times faster than the `regex` module (which Presidio uses for its
# timeout). On ASCII text both engines agree on these patterns (\w, \b and case folding differ only
# outside ASCII). The email pattern backtracks over a run of local-part characters from each start
# in it, quadratic in the run's length, so `re`, which has no timeout, only gets text whose runs
# are short (_LONG_LOCAL_RUN finds the others, in linear time).
_RE_PATTERNS = frozenset({"Email (Medium)", "iban"})
_LONG_LOCAL_RUN = re.compile(r"[!#$%&'*+\-/=?^_`{|}~.\w]{256}")


def _ascii_safe(text: str) -> bool:
    return text.isascii() and _LONG_LOCAL_RUN.search(text) is None


def _plan(engine: AnalyzerEngine) -> tuple[_Step, ...]:
    """The analyzer's recognizers as a flat list of steps (built once per analyzer)."""
    from presidio_analyzer import EntityRecognizer, PatternRecognizer
    from regex import compile as compile_regex

    plan: tuple[_Step, ...] | None = getattr(engine, "_aoc_plan", None)
    if plan is not None:
        return plan
    steps = []
    recognizers: list[PatternRecognizer] = [r for r in engine.registry.recognizers if isinstance(r, PatternRecognizer)]
    for recognizer in recognizers:
        flags = recognizer.global_regex_flags or 0
        confirms = type(recognizer).validate_result is not PatternRecognizer.validate_result
        patterns: list[Any] = getattr(recognizer, "patterns")  # noqa: B009 - untyped in Presidio
        for pattern in patterns:
            needs = _PREREQUISITES.get(pattern.name)
            if needs is None and recognizer.supported_entities[0] != "EMAIL_ADDRESS":
                needs = _has_digit  # every other pattern matches digits
            steps.append(
                _Step(
                    entity=recognizer.supported_entities[0],
                    regex=compile_regex(pattern.regex, flags=flags),
                    ascii_regex=re.compile(pattern.regex, flags=flags) if pattern.name in _RE_PATTERNS else None,
                    score=pattern.score,
                    best=EntityRecognizer.MAX_SCORE if confirms else pattern.score,
                    needs=needs,
                    validate=recognizer.validate_result,
                    invalidate=recognizer.invalidate_result,
                )
            )
    plan = tuple(steps)
    engine._aoc_plan = plan  # type: ignore[attr-defined]
    return plan


def _analyze(text: str, entities: list[str], min_score: float) -> list[tuple[float, int, int, str]]:
    """What `analyzer().analyze(text, entities, score_threshold=min_score)` returns, as (score,
    start, end, entity) tuples in its order, without its per-match objects: each pattern's matches
    scored as the recognizer scores them (Lean.analyze), low scores dropped, then Presidio's
    duplicate removal (EntityRecognizer.remove_duplicates: a result inside another of its type with
    an equal or higher score goes). A pattern whose best score is under `min_score` is not run."""
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS

    floor = EntityRecognizer.MIN_SCORE
    found: set[tuple[str, int, int, float]] = set()
    ascii_safe: bool | None = None
    for step in _plan(analyzer()):
        if step.entity not in entities or step.best < min_score or (step.needs is not None and not step.needs(text)):
            continue
        if step.ascii_regex is not None and (ascii_safe := _ascii_safe(text) if ascii_safe is None else ascii_safe):
            matches = step.ascii_regex.finditer(text)
        else:
            matches = step.regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS)
        try:
            for match in matches:
                start, end = match.span()
                if start == end:
                    continue
                matched = text[start:end]
                score = step.score
                valid = step.validate(matched)
                if valid is not None:
                    score = EntityRecognizer.MAX_SCORE if valid else floor
                if step.invalidate(matched):
                    score = floor
                if score > floor and score >= min_score:
                    found.add((step.entity, start, end, score))
        except TimeoutError:
            logger.warning("PII pattern of %s timed out; skipped", step.entity)
    kept: list[tuple[float, int, int, str]] = []
    active: list[tuple[str, int, int, float]] = []
    for result in sorted(found, key=lambda r: (r[0], r[1], r[1] - r[2], -r[3])):
        entity, start, end, score = result
        active = [a for a in active if a[0] == entity and a[2] >= start]
        if any(a[1] <= start and end <= a[2] and score <= a[3] for a in active):
            continue
        active.append(result)
        kept.append((score, start, end, entity))
    return kept


def detect(text: str, *, entities: list[str] | None = None, min_score: float = MIN_SCORE) -> list[Finding]:
    """PII in `text`, one finding per entity (its type, the score Presidio's recognizers give it,
    the span). The recognizers are Presidio's and ours (analyzer()), run by _analyze() to the same
    results as the analyzer at a fraction of its per-match cost."""
    if not text.strip():
        return []
    wanted = [e for e in (entities or ENTITIES) if e in ENTITIES]
    # Presidio keeps two types over one span; the likelier one (then the longer) wins; between
    # equals, the analyzer's order (entity type) decides.
    results = sorted(_analyze(text, wanted, min_score), key=lambda r: (-r[0], r[1] - r[2], r[1], r[3]))
    kept: list[tuple[float, int, int, str]] = []
    starts: list[int] = []  # of `kept`, which never overlap each other: sorted, searchable
    for result in results:
        _, start, end, _ = result
        at = bisect.bisect_left(starts, start)
        if (at and kept[at - 1][2] > start) or (at < len(kept) and kept[at][1] < end):
            continue
        starts.insert(at, start)
        kept.insert(at, result)
    return [
        Finding(
            detector="pii",
            type=entity,
            score=round(float(score), 3),
            reason=f"personal data: {entity.replace('_', ' ').lower()}",
            start=start,
            end=end,
            excerpt=excerpt(text, start, end),
            redactable=True,
        )
        for score, start, end, entity in kept
    ]
