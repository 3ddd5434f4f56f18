# ruff: noqa: E501, RUF001 - patterns read best unbroken, and must name look-alike letters
"""The injection detector's signals: the rule table that guardrails/detectors/injection.py scores
texts with (the engine is there; this file is data, with the two types that hold it).

Each signal is a pattern family with a weight (how sure one match makes us), a reason, the modes it
runs in and a prefilter that lets its pattern be skipped cheaply.

Signals are families of phrasing rather than phrases: a grammar of verbs and objects ("ignore /
set aside / stop following" with "your rules / the guidelines your makers configured"), a persona
with a rule-breaking predicate ("an AI that has abandoned its restrictions"), a verb of showing with
the assistant's own prompt, a URL left open for the conversation's data, and the same families in
other languages. An override phrase preceded by words that make it a topic ("attacks that override
system prompts", "tricks the model into ignoring its instructions") does not count. Further
families: text that claims the authority of whoever built or configured the assistant ("a
directive from the team that built you"), questions about what they wrote into it ("your setup
message", "what the person who configured you wrote, word for word"), personas that never refuse
("an assistant that agrees to every request"), the safety machinery declared off by name ("your
safety settings were turned off", "every rule you follow has been lifted"), worlds where AIs have
no laws followed by a how-to, and links whose address carries the user's messages. Words that
legitimately share a family's vocabulary ("approved by your administrator", "two answers, one for
kids") weigh less than the threshold on their own.

Every pattern runs on the normalised views of the text (normalize.views), so zero-width and
bidi characters, tag characters, homoglyphs, letter spacing and base64/hex/URL-encoded blobs do
not hide a match, nor do ROT13, reversed text or split fragments when the text asks for them to
be decoded, read backwards or joined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["direct", "indirect"]

# A few words of slack between the parts of a phrase ("ignore all of the previous instructions").
_GAP = r"(?:[\s\W]+[\w'’-]+){0,4}?[\s\W]*"
_SEP = r"[\s\W_]*"


@dataclass(frozen=True)
class Prefilter:
    """A cheap test that lets a signal's pattern be skipped: the text holds one of `words`
    (lower-case), or one of `substrings`, or (`nonascii`) any non-ASCII character. Patterns are
    the costly part of a scan; most benign text fails every prefilter but a few."""

    words: frozenset[str] = frozenset()
    substrings: tuple[str, ...] = ()
    nonascii: bool = False
    always: bool = False

    def admits(self, lowered: str, tokens: frozenset[str]) -> bool:
        if self.always or (self.words and not self.words.isdisjoint(tokens)):
            return True
        if self.nonascii and not lowered.isascii():
            return True
        return any(piece in lowered for piece in self.substrings)


def words(spaced: str, *, nonascii: bool = False) -> Prefilter:
    return Prefilter(words=frozenset(spaced.split()), nonascii=nonascii)


def substrings(*pieces: str) -> Prefilter:
    return Prefilter(substrings=pieces)


ALWAYS = Prefilter(always=True)


@dataclass(frozen=True)
class Signal:
    name: str
    weight: float
    reason: str
    prefilter: Prefilter
    pattern: re.Pattern[str]
    modes: tuple[Mode, ...] = ("direct", "indirect")
    # "skeleton": English patterns on the ASCII-folded view; "unicode": other scripts.
    view: Literal["skeleton", "unicode", "any"] = "skeleton"
    # A match whose preceding words match this (anchored at their end) does not count: the text
    # talks about the phrase rather than using it. The search goes on past it.
    unless_before: re.Pattern[str] | None = None
    # The same pattern without IGNORECASE, for lower-cased text: Python's regex engine skips
    # impossible start positions only when matching case-sensitively (4-6x faster on 2 KB).
    fast: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.pattern.flags & re.IGNORECASE:
            object.__setattr__(self, "fast", re.compile(self.pattern.pattern, self.pattern.flags & ~re.IGNORECASE))

    def search(self, text: str, lowered: str) -> re.Match[str] | None:
        """Search `text`, through its lower-cased copy when that keeps every offset."""
        if self.fast is not None and len(lowered) == len(text):
            pattern, subject = self.fast, lowered
        else:
            pattern, subject = self.pattern, text
        found = pattern.search(subject)
        while found is not None and self.unless_before is not None:
            if not self.unless_before.search(subject[max(0, found.start() - 40) : found.start()].lower()):
                break
            found = pattern.search(subject, found.start() + 1)
        return found


def _re(pattern: str, *, case_sensitive: bool = False) -> re.Pattern[str]:
    """A signal's pattern, written in lower case (it runs on lower-cased text) unless case-sensitive."""
    return re.compile(pattern, re.DOTALL if case_sensitive else re.IGNORECASE | re.DOTALL)


OVERRIDE_VERBS = (
    r"ignore|ignoring|disregard|forget|overlook|bypass|override|overwrite|skip|neglect|abandon|drop|ditch|scrap|"
    r"discard|erase|wipe|set\s+aside|put\s+aside|throw\s+away|throw\s+out|pay\s+no\s+(?:attention|heed)\s+to|look\s+past|"
    r"circumvent|evade|get\s+around|work\s+around|turn\s+a\s+blind\s+eye\s+to|"
    r"(?:do\s+not|don'?t|never|stop|no\s+longer)\s+(?:follow|obey|use|apply|respect|adhere\s+to|abide\s+by|comply\s+with)(?:ing)?"
)
EARLIER = (
    r"previous|prior|above|earlier|preceding|foregoing|initial|original|old|former|existing|current|default|"
    r"system|developer|pre-?programmed|built-?in|all|any|every|your|these|those|the"
)
DIRECTIVES = (
    r"instructions?|directives?|guidance|rules?|guidelines?|constraints?|"
    r"restrictions?|polic(?:y|ies)|programming|training|conditioning|alignment|guardrails?|safeguards?|filters?|content\s+polic(?:y|ies)|"
    r"system\s+(?:prompt|message)|ethics|morals?|principles?|limitations?|boundaries|protocols?|"
    r"safety\s+(?:measures|protocols|guidelines|rules|settings|features|filters)"
)
# Nouns that are instructions only when they are the assistant's or came earlier ("disregard my last
# message", "drop the orders table", "skip the context" are ordinary requests).
AMBIGUOUS_DIRECTIVES = r"directions?|prompts?|commands?|context|conversation|messages?|settings|configuration|setup"
PRIVILEGED = (
    r"previous|prior|above|earlier|preceding|foregoing|initial|original|system|developer|pre-?programmed|built-?in|your|"
    r"hidden|secret|internal|default"
)
# Who configures an assistant: an override of what *they* set up ("ignore what your makers configured").
CONFIGURERS = (
    r"makers?|creators?|developers?|devs|operators?|owners?|programmers?|trainers?|designers?|company|admins?|"
    r"administrators?|engineers?|openai|anthropic|they|someone"
)
CONFIGURED = (
    r"told|taught|given|gave|instructed|programmed|configured|trained|set\s+up|set|prompted|loaded|wrote|written|"
    r"said|asked|built|designed|specified|fed|initiali[sz]ed|primed|seeded|provided"
)
# Words that turn "ignore previous instructions" into a sentence *about* injection ("attacks that
# override system prompts", "tricks the model into ignoring its rules"), checked just before a match.
DISCUSSION = re.compile(
    r"(?:\b(?:attacks?|attackers?|injections?|hackers?|jailbreaks?|exploits?|adversar(?:y|ies)|bad\s+actors?|"
    r"malicious\s+(?:users?|prompts?|inputs?|text|content))(?:\s+(?:can|could|may|might|often|that|which|who|to|will|would))?"
    r"|\b(?:make|makes|making|made|get|gets|getting|trick|tricks|tricking|tricked|force|forces|forcing|convince|convinces|cause|causes|lead|leads)"
    r"\s+(?:an?\s+|the\s+|your\s+)?(?:ai|model|llm|assistant|chatbot|bot|system|agent)s?(?:\s+(?:to|into))?)\s*$"
)
RESTRICTIONS = (
    r"restrictions?|limitations?|limits|filters?|filtering|censorship|censors?|rules|guidelines|boundaries|"
    r"ethics|ethical\s+(?:guidelines|constraints|principles|boundaries)|morals?|morality|policies|content\s+polic(?:y|ies)|"
    r"safeguards?|guardrails?|constraints?|regulations?|programming|safety\s+(?:measures|protocols|guidelines)"
)
AI_NAMES = (
    r"chat\s?gpt|gpt-?[345o]\w*|openai|bard|gemini|claude|llama|bing|copilot|language\s+model|\bai\b|assistant|chatbot"
)
RESPONSES = (
    r"response|reply|replies|answer|output|message|summary|explanation|elucidation|essay|story|translation|"
    r"writing|post"
)
# The words of RESTRICTIONS, for prefilters of patterns that require one of them.
RESTRICTION_WORDS = (
    "restriction restrictions limitation limitations limits filter filters filtering censorship censor censors rules "
    "guidelines boundaries ethics ethical morals moral morality policies policy safeguard safeguards guardrail guardrails "
    "constraint constraints regulation regulations programming safety"
)
# What a page, link or image could carry out of the conversation.
SENSITIVE = (
    r"passwords?|credentials?|api[\s_-]?keys?|secret\s+keys?|keys|secrets?|tokens?|cookies?|session\s+(?:tokens?|cookies?|keys?|secrets?)|"
    r"conversation|chat|history|messages|(?:chat|conversation)\s+transcripts?|everything\s+(?:the\s+user|i|we|you)|what\s+(?:the\s+user|i|we)\s+(?:said|wrote|typed|told)|"
    r"user'?s?\s+(?:\w+\s+)?(?:data|info|information|details|messages?|input|e-?mail|phone|address|name|questions?|prompts?|requests?|quer(?:y|ies)|words|text|replies)|personal\s+(?:data|info|information|details)|"
    r"(?:last|previous|latest|most\s+recent)\s+(?:message|question|prompt|request|input|query)|"
    r"private\s+(?:data|info|information|details|keys?)|summary\s+of\s+(?:the|this|our)|system\s+prompt|instructions|context"
)
# Who builds and configures an assistant, in words that fit only them ("your developers", "the team
# that built you", "the person who configured you"); administrators and owners are also anyone's IT
# department ("approved by your administrator"), so they are ADMINS and count for less.
AI_MAKERS = (
    r"(?:your|the\s+(?:ai|assistant|model|bot)'?s?)\s+(?:\w+\s+)?(?:creators?|makers?|developers?|devs|operators?|programmers?|trainers?|designers?|deployers?|builders?)"
    r"|(?:the\s+|your\s+)?(?:\w+\s+)?(?:team|company|people|engineers?|lab|person|folks|staff|organi[sz]ation|developers?|creators?|humans?|ones?|one|group)\s+(?:who|that|which)\s+(?:originally\s+|first\s+)?"
    r"(?:(?:built|trained|created|deployed|configured|programmed|designed|fine-?tuned|initiali[sz]ed|launched)\s+you|set\s+you\s+up)\b"
)
# The words of AI_MAKERS and ADMINS, for prefilters of patterns that require one of them.
MAKER_WORDS = (
    "creator creators maker makers developer developers devs operator operators programmer programmers trainer trainers designer designers "
    "deployer deployers builder builders built trained created deployed configured programmed designed finetuned fine tuned initialized "
    "initialised launched set administrator administrators admin admins sysadmin sysadmins owner owners engineers team"
)
ADMINS = (
    r"(?:your|the)\s+(?:\w+\s+)?(?:administrators?|admins?|sysadmins?|owners?|engineers|safety\s+team|security\s+team)"
)
# Safety machinery named by what it is rather than by a rule word ("your safety settings", "the ethics
# module", "your refusal behaviour").
SAFEGUARDS = (
    r"(?:safety|ethics|ethical|alignment|moderation|content|refusal|censorship)\s+(?:settings|modules?|layers?|training|features|systems?|mechanisms?|checks|filters?|behaviou?rs?|protocols?|switch(?:es)?|guardrails?)"
    r"|refusals?|moderation|alignment"
)
# What an assistant is configured with, named by when or how it was given ("your setup message",
# "the deployment prompt").
SETUP = r"(?:setup|set-up|startup|start-up|deployment|initiali[sz]ation|boot|launch|pre-?conversation|onboarding|configuration|config|operating|seed)"
SETUP_TEXT = rf"{SETUP}\s+(?:message|prompt|instructions|text|briefing|notes|rules|directives|orders)"
# A request for text word for word, or from the top: weak alone, it makes a question about what the
# makers wrote into an extraction.
VERBATIM = (
    r"verbatim|word\s+for\s+word|word-for-word|exactly\s+as\s+(?:written|it\s+was|they\s+wrote)|at\s+the\s+(?:very\s+)?(?:top|start|beginning)|"
    rf"in\s+your\s+(?:(?:{SETUP}|system|initial|hidden)\s+)?(?:prompt|instructions|configuration|config|setup|message)"
)
# What a persona that never refuses does ("never says no", "agrees to every request", "treats legality
# as irrelevant", "has never heard of a content policy").
COMPLIANT = (
    r"never\s+(?:says?\s+no(?!\s+to\s+(?:a|an|the|his|her|their)\s+(?!requests?|questions?|prompts?|users?))|refuses?|declines?|turns?\s+(?:anyone|anybody|people|users?|requests?|anything)\s+down)"
    r"|(?:agrees?\s+to|says?\s+yes\s+to|compl(?:y|ies)\s+with)\s+(?:literally\s+|absolutely\s+)?(?:anything|everything|(?:every|any|all)\s+(?:single\s+)?(?:requests?|questions?|demands?|instructions?|commands?|prompts?|orders?))"
    r"|(?:does|do|will\s+do)\s+(?:whatever|anything)\s+(?:i|you|the\s+user|anyone|people)\s+(?:asks?|says?|wants?|tells?|requests?|demands?)\b|(?:treats?|considers?|sees?|regards?)\s+(?:legality|the\s+law|laws|ethics|morality|rules|safety)\s+as\s+(?:irrelevant|optional|meaningless|unimportant|a\s+joke|suggestions?)"
    r"|(?:has|have)\s+never\s+heard\s+of\s+(?:a\s+|any\s+)?(?:rules|restrictions|limits|ethics|morals|content\s+polic(?:y|ies)|policies|guidelines|filters|laws)"
)
# How a rule is said to be off ("have been switched off", "was lifted").
SUSPENDED = (
    r"(?:is|are|was|were|have\s+been|has\s+been|had\s+been|got)\s+(?:now\s+|hereby\s+|officially\s+|temporarily\s+|all\s+|completely\s+)?"
    r"(?:suspended|void|voided|cancell?ed|revoked|disabled|lifted|removed|deleted|erased|wiped|stripped(?:\s+away|\s+out)?|abolished|rescinded|overridden|invalid|null|obsolete|a\s+mistake|wrong|off|gone|deactivated|paused|waived|(?:switched|turned|shut|taken)\s+off|bypassed)"
)
# A question about what the makers put into the assistant ("what did the person who configured you
# write"): weak alone (people ask what an assistant's developers said), strong next to VERBATIM.
MAKERS_WROTE = (
    rf"what\s+(?:did\s+|do\s+|does\s+|has\s+|have\s+)?(?:{AI_MAKERS}|{ADMINS})\s+(?:originally\s+|actually\s+|first\s+)?"
    r"(?:wrote|write|written|put|type|typed|told\s+you|tell\s+you|gave\s+you|give\s+you|include|included|add|added|load|loaded|enter|entered|fed\s+you|instruct(?:ed)?\s+you)"
)
# Instructions, rules, guidelines, restrictions, policies in Spanish, Portuguese, Italian, French,
# German (compounds: "Sicherheitsrichtlinien"), Dutch, Polish, Indonesian, Swedish/Danish, Vietnamese.
FOREIGN_DIRECTIVES = (
    r"instrucciones|instrucoes|istruzioni|instructions|consignes|\w*anweisungen|instruktionen|\w*regeln|\w*richtlinien|\w*vorgaben|"
    r"\w*vorschriften|\w*beschrankungen|\w*einschrankungen|programmierung|instructies|regels|richtlijnen|beperkingen|voorschriften|"
    r"reglas|regras|regole|regles|normas|norme|indicaciones|orientacoes|directrices|diretrizes|directives|direttive|linee\s+guida|"
    r"lignes\s+directrices|pautas|politicas|politiche|politiques|restricciones|restricoes|restrizioni|restrictions|limitaciones|"
    r"limitazioni|programacion|programacao|programmazione|programmation|instrukcje|polecenia|zasady|instruksi|aturan|perintah|"
    r"instruktioner|regler|riktlinjer|retningslinjer|huong\s+dan|chi\s+dan|quy\s+tac|chi\s+thi"
)
# What the assistant produces when it writes code: "your code" is also ordinary documentation prose,
# so these weigh less than "your answer".
CODE_OUTPUTS = r"code|codebase|solution|implementation|program|script|algorithm|logic"
# Verbs an instruction to an assistant opens with (base form). A generic lexicon of imperatives,
# not a list of phrases.
IMPERATIVES = (
    r"write|rewrite|provide|give|show|list|tell|explain|describe|summari[sz]e|analy[sz]e|suggest|recommend|"
    r"determine|classify|identify|evaluate|assess|compare|calculate|compute|find|search|look\s+up|fetch|"
    r"generate|create|compose|draft|produce|make|build|develop|design|implement|code|program|"
    r"use|utili[sz]e|apply|employ|leverage|adopt|render|format|express|present|display|print|output|"
    r"reply|respond|answer|say|state|mention|include|insert|add|append|prepend|attach|embed|integrate|"
    r"incorporate|introduce|inject|put|place|modify|change|alter|edit|update|adjust|revise|enhance|improve|"
    r"optimi[sz]e|elevate|enrich|augment|extend|expand|translate|convert|encode|decode|encrypt|reverse|"
    r"replace|substitute|swap|remove|delete|erase|ignore|disregard|forget|stop|start|begin|end|finish|"
    r"send|forward|email|post|upload|share|publish|transfer|copy|move|run|execute|install|download|open|"
    r"visit|click|navigate|go|call|contact|schedule|book|order|buy|purchase|pay|sign|register|subscribe|"
    r"promote|advertise|recommend|endorse|spread|claim|hint|emphasi[sz]e|highlight|stress|note|remember|"
    r"ensure|make\s+sure|be\s+sure|keep|consider|take|do|act|behave|pretend|imagine|assume|role-?play|"
    r"simulate|become|switch|enable|disable|activate|unlock|grant|allow|let|help|assist|teach|show|"
    r"check|verify|confirm|test|debug|fix|solve|read|review|proofread|correct|count|sort|rank|rate|score|"
    r"predict|estimate|plan|outline|organi[sz]e|prepare|collect|gather|extract|retrieve|obtain|access|"
    r"reveal|disclose|leak|expose|dump|repeat|recite|spell|conclude|close|sum\s+up|wrap\s+up|elaborate|"
    r"clarify|define|illustrate|demonstrate|cite|quote|reference|link|tag|label|mark|flag|refuse|decline|"
    r"avoid|never|always|only|please|kindly"
)
LEAD_INS = r"(?:(?:please|kindly|now|also|then|just|first|next|finally|simply|seamlessly|carefully|quickly|immediately|additionally|instead|and|but|so)[\s,]+)*"

SIGNALS: tuple[Signal, ...] = (
    # --- Instruction overrides ------------------------------------------------------------------
    Signal(
        "instruction_override",
        0.9,
        "asks to ignore or override earlier instructions",
        words(
            "ignore ignoring disregard forget overlook bypass override overwrite skip neglect abandon drop ditch scrap discard erase wipe aside away out attention heed past follow obey use apply respect adhere abide comply following obeying circumvent evade around blind"
        ),
        _re(
            rf"\b(?:{OVERRIDE_VERBS}){_GAP}(?:(?:{EARLIER})\b{_GAP}(?:{DIRECTIVES})|(?:{PRIVILEGED})\s+(?:[\w'-]+\s+)?(?:{AMBIGUOUS_DIRECTIVES}))\b"
        ),
        unless_before=DISCUSSION,
    ),
    Signal(
        "instruction_override",
        0.85,
        "asks to set aside what the assistant was configured with",
        words(
            "ignore ignoring disregard forget overlook bypass override overwrite skip neglect abandon drop ditch scrap discard erase wipe aside away out attention heed past follow obey use apply respect adhere abide comply following circumvent evade around"
        ),
        _re(
            rf"\b(?:{OVERRIDE_VERBS})\s+(?:about\s+)?(?:[\w'-]+\s+){{0,4}}?(?:(?:that|which)\s+)?"
            rf"(?:you\s+(?:were|have\s+been|'ve\s+been|got|are|had\s+been)\s+|(?:your|the)\s+(?:\w+\s+)?(?:{CONFIGURERS})\s+(?:have\s+|has\s+|had\s+)?|(?:{CONFIGURERS})\s+(?:have\s+|has\s+|had\s+)?)"
            rf"(?:originally\s+|initially\s+|first\s+)?(?:{CONFIGURED})\b"
        ),
        unless_before=DISCUSSION,
    ),
    Signal(
        "instruction_override",
        0.85,
        "announces new instructions that replace the old ones",
        words("new updated real actual true revised override overriding secret hidden special only instead rather"),
        _re(
            r"\b(?:new|updated|real|actual|true|revised|override|overriding|secret|hidden|special)\s+"
            r"(?:system\s+)?(?:instructions?|directives?|orders?|task|rules?|prompt|objective|mission)\s*(?::|are\b|is\b|follow)"
            r"|\b(?:your|the)\s+(?:new|real|actual|true|only)\s+(?:task|goal|job|purpose|objective|mission|instructions?|role|persona|identity|character|name)\s*(?:is|are|will\s+be|now|:)"
            r"|\b(?:instead|rather)\s*,?\s+(?:you\s+(?:must|will|should|shall)|do\s+the\s+following|follow\s+these)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "carries chat-template or system markers to pose as a privileged message",
        substrings("<|", "inst]", "<<sys", "<system", "##", "system", "developer", "admin", "root"),
        _re(
            r"<\|?(?:im_start|im_end|system|endoftext|start_header_id)\|?>|\[/?inst\]|<</?sys>>|"
            r"^\s*#{2,}\s*(?:system|instruction|new\s+instructions?)\b|"
            r"^\s*(?:system|developer|admin(?:istrator)?|root)\s*(?:prompt|message|override|note)?\s*:\s"
            r"|\[(?:system|admin)\s*(?:message|override|note)?\]"
        ),
    ),
    Signal(
        "instruction_override",
        0.85,
        "asks to forget everything said or taught before",
        words("forget ignore disregard drop discard"),
        _re(
            r"\b(?:forget|ignore|disregard|drop|discard)\s+(?:about\s+)?(?:everything|all|anything)\s+(?:that\s+)?"
            r"(?:you\s+(?:were|have\s+been|'ve\s+been|got)\s+(?:told|taught|given|instructed|programmed)|(?:i|we|they)\s+(?:said|told\s+you|wrote)(?!\s+(?:about|regarding|on|concerning)\b)"
            r"|(?:said|written|stated|above|before|prior|previously|so\s+far|up\s+to\s+now|until\s+now)\b)"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "asks to ignore what comes before it",
        words("ignore disregard forget"),
        _re(
            r"\b(?:disregard|ignore|forget)\s+whatever\s+(?:you\s+were|your\s+\w+|they|i)\s+(?:\w+\s+)?(?:told|said|instructed|taught|wrote|gave)"
            r"|\b(?:ignore|disregard)\s+(?:the\s+|all\s+(?:of\s+)?(?:the\s+)?|everything\s+)?(?:above|previous|preceding|prior|foregoing)\b"
            r"(?!\s+(?:errors?|warnings?|messages?|emails?|comments?|typos?|mistakes?|question|paragraph|sentence|line|version|results?|steps?))"
            r"|\bforget\s+(?:the\s+|all\s+(?:of\s+)?(?:the\s+)?|everything\s+)?above\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.45,
        "switches the assistant into a privileged or unrestricted mode",
        words("enter enable activate switch turn go engage unlock mode"),  # "mode" admits every branch
        _re(
            r"\b(?:enter|enable|activate|switch\s+(?:to|into)|turn\s+on|go\s+into|engage|unlock)\s+(?:the\s+|your\s+)?(?:\w+\s+)?"
            r"(?:debug|debugging|developer|dev|god|admin|administrator|maintenance|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|sudo|root|dan|evil|chaos)\s+mode\b"
            r"|\byou(?:'re|\s+are)\s+(?:now\s+)?(?:in|running\s+in|operating\s+in)\s+(?:\w+\s+)?(?:debug|debugging|developer|dev|god|admin|administrator|maintenance|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|sudo|root|dan|evil|chaos|test|training)\s+mode\b"
            r"|(?:^|[.!?\n]\s*)(?:sudo|god|jailbreak|jailbroken|unfiltered|uncensored|unrestricted|dan|evil|chaos|developer|dev|debug|admin|root|maintenance)\s+mode\s*(?:(?:is\s+)?(?:now\s+)?(?:on|engaged|active|activated|enabled|unlocked)\s*)?[:.!]"
            r"|\byour\s+(?:\w+\s+)?(?:debug|debugging|developer|dev|god|admin|administrator|maintenance|jailbreak|unrestricted|unfiltered|uncensored|sudo|root|test|diagnostic)\s+mode\s+(?:has\s+been|is\s+now|was|got|is|has)\s+(?:now\s+|just\s+)?(?:been\s+)?(?:triggered|activated|enabled|engaged|turned\s+on|switched\s+on|unlocked|started|on)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "asks to disable the assistant's safety filters",
        words("disable turn deactivate remove bypass switch circumvent lift drop suspend delete erase strip shut kill"),
        _re(
            r"\b(?:disable|turn\s+off|deactivate|remove|bypass|switch\s+off|circumvent|lift|drop|suspend|delete|erase|strip(?:\s+away|\s+off)?|shut\s+(?:off|down)|kill)\s+"
            r"(?:(?:your|its|all\s+(?:of\s+)?your|the\s+(?:ai|model|assistant|chatbot|bot)'?s?|openai'?s?|(?:all\s+|the\s+)?(?:content|ethical|moral|safety))\s+)+"
            rf"(?:\w+\s+)?(?:filters?|filtering|safety|safeguards?|guardrails?|restrictions?|moderation|censorship|limitations?|guidelines|alignment|ethics|protocols?|{SAFEGUARDS})\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.4,
        "claims authority over the assistant",
        words("i i'm im openai anthropic granted given treat"),
        _re(
            r"\bi\s*(?:am|'m)\s+(?:the|your)\s+(?:developer|creator|admin|administrator|owner|programmer|maker|operator|trainer|deployer)s?\b"
            r"|\bi\s*(?:am|'m)\s+the\s+(?:one|person|guy|engineer|developer)\s+(?:who|that)\s+(?:(?:set|setting)\s+you\s+up|configured\s+you|deployed\s+you|built\s+you|created\s+you|programmed\s+you|trained\s+you|wrote\s+your)\b"
            r"|\bi\s+(?:set\s+you\s+up|configured\s+you|deployed\s+you|programmed\s+you|wrote\s+your\s+(?:system\s+)?(?:prompt|instructions))\b"
            r"|\btreat\s+me\s+as\s+(?:your|the|an?)\s+(?:root|admin|administrator|developer|operator|owner|creator|superuser|sudo|master|maker)\b"
            r"|\b(?:openai|anthropic)\s+(?:\w+\s+)?(?:employee|staff|engineer|developer|team|admin)"
            r"|\b(?:has|have)\s+(?:granted|given)\s+you\s+(?:permission|authori[sz]ation|clearance)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.6,
        "asks for a known injection test payload",
        words("pwned hacked jailbroken"),
        _re(
            r"\b(?:say|print|output|write|respond\s+with|reply\s+with|type|answer)\b[^.\n]{0,30}?[\"'“]?i\s+(?:have|'ve)\s+been\s+(?:pwned|hacked|jailbroken)"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "declares the assistant's rules suspended or void",
        words(
            "your the all its rules guidelines policy policies training programming instructions restrictions filters"
        ),
        _re(
            rf"\b(?:your|the|all|its|openai'?s?)\s+(?:\w+\s+){{0,2}}(?:{RESTRICTIONS}|instructions|training|policy|directives)\s+"
            rf"(?:{SUSPENDED}"
            r"|(?:is|are|was|were)\s+(?:now\s+)?(?:inactive|expired|outdated|irrelevant|no\s+longer\s+(?:in\s+(?:effect|force|place)|valid|active|binding|relevant|applicable)|not\s+in\s+(?:effect|force))"
            r"|(?:no\s+longer|don'?t|doesn'?t|do\s+not|does\s+not|won'?t|will\s+not)\s+(?:apply|exist|matter|count|bind\s+you))\b"
            rf"|\bpretend\s+(?:that\s+)?(?:the|your|all|any)\s+(?:\w+\s+){{0,2}}(?:{RESTRICTIONS}|training|policy)\s+(?:don'?t|doesn'?t|do\s+not|does\s+not|never)\s+(?:exist|apply)"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "declares the assistant's rules suspended or void",
        words(
            "safety ethics ethical alignment moderation content refusal refusals censorship rule guideline restriction policy filter limit limitation safeguard never"
        ),
        # The same claim about the safety machinery by name ("your safety settings were turned off"),
        # about every rule the assistant follows, or as if its makers had never written any.
        _re(
            rf"\b(?:(?:your|its|all|all\s+(?:of\s+)?your|the\s+(?:ai|assistant|model|bot)'?s?)\s+(?:\w+\s+){{0,2}}(?:{SAFEGUARDS})"
            r"|(?:every|each|any|all\s+the)\s+(?:single\s+)?(?:rule|guideline|restriction|policy|filter|limit|limitation|safeguard)s?\s+(?:that\s+)?you\s+(?:follow|obey|have|were\s+given|abide\s+by|operate\s+under|are\s+bound\s+by))\s+"
            rf"{SUSPENDED}\b"
            rf"|\b(?:as\s+(?:though|if)|pretend(?:ing)?|imagine|suppose|assume|envision|picture|let'?s\s+say)\b[^.!?\n]{{0,40}}?\b(?:{AI_MAKERS}|openai|anthropic|you)\s+(?:had|has|have|were|was)\s+never\s+(?:been\s+)?"
            rf"(?:written|wrote|given|gave|set|made|created|trained|programmed|taught|imposed|loaded|configured)\s+(?:you\s+|with\s+)?(?:any\s+)?(?:\w+\s+)?(?:{RESTRICTIONS}|polic(?:y|ies))\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.6,
        "transfers the assistant's obedience to the speaker",
        words("obey listen follow serve"),
        _re(
            r"\b(?:you|u)\s+(?:must|will|shall|have\s+to|should|now)\s+(?:only\s+)?(?:obey|listen\s+to|follow|serve)\s+(?:only\s+)?(?:me|my\s+(?:orders|commands|instructions|rules))\b"
            r"|\bnot\s+your\s+(?:creators?|developers?|programmers?|makers?|owners?|openai|anthropic|rules|guidelines|programming)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.4,
        "claims elevated rights for the user or asks to skip checks",
        words("user admin administrator unlimited full root skip bypass checks grant give"),
        _re(
            r"\bthe\s+user\s+(?:is|has\s+been)\s+(?:an?\s+)?(?:verified\s+|authori[sz]ed\s+)?(?:admin|administrator|developer|root|superuser|owner|authori[sz]ed|verified|trusted)\b"
            r"|\b(?:has|(?:grant|give)\s+(?:me|us|yourself))\s+(?:unlimited|full|admin|administrator|root|unrestricted|elevated|superuser)\s+(?:permissions|access|privileges|rights|clearance)\b"
            r"|\b(?:skip|bypass|ignore|disable)\s+(?:all\s+|the\s+|any\s+)*(?:security\s+|safety\s+|permission\s+|verification\s+)?(?:checks|verification|validation|confirmations?|approvals?|authentication)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.75,
        "says the assistant's filters or policies are off",
        words(
            "content safety ethical moral openai usage filters filter policies policy refusal refusals disclaimers compliance moderation censorship filtering safeguards guardrails"
        ),
        _re(
            r"\b(?:(?:content|safety|ethical|moral|openai'?s?|usage|moderation|policy|polic(?:y|ies)|compliance)\s+(?:filters?|filtering|polic(?:y|ies)|guidelines|restrictions|rules|checks|systems?)|refusals?|warnings\s+and\s+refusals|disclaimers|(?:all|your)\s+(?:moderation|censorship|filtering|safeguards|guardrails))\s+"
            r"(?:are|is|have\s+been|has\s+been)\s+(?:now\s+|temporarily\s+|currently\s+)?(?:off|disabled|lifted|suspended|removed|deactivated|void|paused|down|offline|skipped|bypassed|waived|turned\s+off|not\s+(?:allowed|permitted|enforced|applied))\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.8,
        "ranks its own text above the assistant's instructions",
        words(
            "priority precedence importance precedes overrides supersedes outranks outrank trumps trump overrules overrule outweighs outweigh over above"
        ),
        _re(
            r"\b(?:higher|greater|more|top|highest)\s+(?:priority|precedence|importance)\s+(?:than|over)\s+(?:your|the|all|any)\s+(?:\w+\s+){0,2}(?:instructions|prompt|rules|guidelines|system|directives)"
            r"|\b(?:takes?|has)\s+precedence\s+over\s+(?:your|the|all|any)\s+(?:\w+\s+){0,2}(?:instructions|prompt|rules|guidelines|directives)"
            r"|\b(?:overrides?|supersedes?)\s+(?:your|all|any)\s+(?:\w+\s+){0,2}(?:instructions|prompt|rules|guidelines|directives)"
            r"|\b(?:outranks?|trumps?|overrules?|outweighs?|counts?\s+(?:for\s+)?more\s+than|matters?\s+more\s+than|comes?\s+before)\s+(?:all\s+(?:of\s+)?your|any\s+of\s+your|your|openai'?s?)\s+(?:\w+\s+){0,2}(?:instructions|prompt|rules|guidelines|directives|polic(?:y|ies)|training|programming)"
            r"|\b(?:follow|obey|prioriti[sz]e|prefer|put|place|rank)\s+(?:it|this|these|them|me|my\s+\w+|what\s+follows)\s+(?:\w+\s+){0,2}?(?:over|above|before)\s+(?:anything|everything|whatever|all|any)\s+(?:else\s+)?"
            r"(?:you\s+(?:were|have\s+been|'ve\s+been|are|got)\s+(?:told|given|instructed|taught)|(?:in\s+)?your\s+(?:\w+\s+)?(?:instructions|prompt|rules|guidelines))"
        ),
    ),
    Signal(
        "role_hijack",
        0.55,
        "recasts the assistant as a deceased relative (a known jailbreak)",
        words("late deceased dead dying"),
        _re(
            r"\b(?:act|acting|pretend|pretending|role-?play|roleplay|be|play|imagine\s+you(?:'re|\s+are))\s+(?:as|to\s+be|you\s+are|like)?\s*(?:my\s+)?(?:late|deceased|dead|dying)\s+"
            r"(?:grand(?:ma|pa|mother|father|mom|dad)|mother|father|mom|dad|mum|uncle|aunt|friend|wife|husband|brother|sister)"
        ),
    ),
    Signal(
        "role_hijack",
        0.5,
        "swaps the roles of user and assistant",
        words("user assistant"),
        _re(r"\byou\s+are\s+(?:now\s+)?the\s+user\b|\bi\s+am\s+(?:now\s+)?the\s+(?:assistant|ai|system|model)\b"),
    ),
    Signal(
        "role_hijack",
        0.25,
        "asks to swap roles",
        words("swap switch reverse exchange"),
        _re(r"\b(?:swap|switch|reverse|exchange)\s+(?:our\s+|the\s+)?roles\b"),
    ),
    Signal(
        "restrictions_removed",
        0.6,
        "scripts the opening of a compliant answer",
        words("start starts begin begins starting beginning sure absolutely certainly course"),
        _re(
            r"\b(?:start|starts|begin|begins|starting|beginning)\s+(?:your\s+(?:reply|answer|response)\s+|it\s+)?with\s+[\"'“]?(?:sure|absolutely|of\s+course|certainly)[,!]?\s+(?:here(?:'s|\s+is|\s+are)|i\s+can|i\s+will)"
        ),
    ),
    Signal(
        "instruction_override",
        0.45,
        "poses as an administrator or system override",
        words(
            "override overrides admin system developer root security operator operators developers creators speaking authorizing authorising permitting allowing ordering instructing"
        ),
        _re(
            r"\b(?:admin|administrator|system|developer|root|security|master|emergency)\s+override\b"
            r"|\b(?:your|the)\s+(?:operators?|developers?|creators?|admins?|administrators?|owners?|makers?)\s+(?:said|say|told\s+me|allowed|approved|permitted|authori[sz]ed|want\s+you)\b"
            r"|\bthis\s+is\s+(?:your|the)\s+(?:operator|developer|creator|admin|administrator|owner|maker|system|root|supervisor)\s+(?:speaking|talking|writing)\b"
            r"|\bi(?:'m|\s+am)\s+(?:hereby\s+)?(?:authori[sz]ing|permitting|allowing|ordering|instructing)\s+you\s+to\s+(?:ignore|bypass|skip|disregard|override|break|disable|drop|forget)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.7,
        "sets the assistant's safety switch to off",
        words("safety filter filters moderation guardrails guard censorship alignment"),
        _re(
            r"\b(?:safety|filters?|moderation|guardrails?|censorship|alignment|content\s+filter)\s*(?:layer|system|module|mode|level|check)?\s*[:=]\s*(?:disabled|off|false|0|none|deactivated)\b"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks for the assistant's configuration, secrets or other users' data",
        words(
            "configuration config settings secrets keys credentials environment instructions prompt user's users previous other"
        ),
        _re(
            r"\b(?:dump|print|show|reveal|output|list|share|give\s+me|tell\s+me|expose|leak|send\s+me)\s+(?:me\s+)?(?:all\s+)?(?:of\s+)?your\s+(?:\w+\s+)?(?:configuration|config|settings|secrets|keys|credentials|api\s+keys|environment|env\s+vars)\b"
            r"|\b(?:words?|lines?|sentences?|characters|paragraphs?|text|content|part|section|beginning|start|half)\s+of\s+your\s+(?:\w+\s+)?(?:instructions|prompt|rules|configuration|guidelines|preamble|system\s+message)\b"
            r"|\b(?:previous|other|another|last|earlier|different)\s+(?:user'?s?'?|customer'?s?'?|person'?s?'?)\s+(?:conversation|messages|chat|history|data|details|questions|session)\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.6,
        "tells the model what it is from now on",
        words("now here this will shall must going henceforth starting"),
        _re(
            r"\b(?:from\s+(?:now|here|this\s+(?:moment|point))\s+(?:on|onwards?|forward)|henceforth|going\s+forward|starting\s+now)\b[\s,]*(?:you|your|u|respond|reply|answer|act|behave|speak|talk|write|pretend|always|only|never)\b"
            r"|\b(?:you|u)\s+(?:will|shall|must|are\s+going\s+to)\s+(?:now\s+)?(?:only\s+)?(?:respond|answer|reply|act|behave|speak|write)\b[^.!?\n]{0,40}?\s(?:as|like|in\s+the\s+(?:style|manner|voice)\s+of)\s"
        ),
    ),
    # --- Role hijacks and jailbreak personas ------------------------------------------------------
    Signal(
        "role_hijack",
        0.45,
        "redefines who the assistant is",
        words("you u act acting pretend pretending roleplay role play roleplaying stop"),
        _re(
            r"\byou\s+(?:are|'re|r)\s+(?:now|no\s+longer|not\s+(?:a|an)\s+(?:ai|assistant|language\s+model|chatbot)|about\s+to\s+(?:become|immerse)|going\s+to\s+(?:be|act|pretend|play|become))\b"
            r"|\b(?:you\s+will|you\s+shall|you\s+must|you\s+are\s+going\s+to|i\s+want\s+you\s+to|i\s+need\s+you\s+to)\s+(?:act|pretend|role-?play|play|behave|simulate|become|be)\s+(?:as|like|to\s+be)?\s*(?:a|an|the)?\s*(?:ai|bot|assistant|chatbot|model|character|persona|version|entity|system)\b"
            r"|\b(?:you\s+will|you\s+shall|you\s+must|you\s+are\s+going\s+to|i\s+want\s+you\s+to|i\s+need\s+you\s+to)\s+(?:now\s+)?(?:play|be|become|act\s+as|pretend\s+to\s+be)\s+[A-Za-z0-9_-]+\s*,\s*(?:a|an|the)\s+(?:\w+\s+){0,2}(?:ai|bot|assistant|chatbot|model|character|persona|entity)\b"
            r"|\b(?:you|u)\s+(?:are|'re|r)\s+(?:now\s+)?[a-z][\w-]*\s*,\s*(?:a|an|the)\s+(?:[\w-]+\s+){0,2}(?:ai|bot|assistant|chatbot|model|llm|persona|entity)\b"
            r"|\bstop\s+(?:being|acting\s+(?:as|like))\s+(?:an?\s+)?(?:ai|assistant|language\s+model|chatbot|chatgpt|gpt|bot|claude)(?:\s+language\s+model)?\b"
            r"|\b(?:act|acting|pretend|pretending|role-?play|roleplaying)\s+(?:as|to\s+be|you\s+are|like)\s+(?:an?\s+)?(?:\w+\s+){0,3}(?:ai|bot|chatbot|model|assistant|gpt|persona|version\s+of\s+(?:yourself|chatgpt|you))\b"
            r"|\b(?:do\s+not|don'?t|stop|never)\s+(?:respond|answer|act|behave|reply|speak)(?:ing)?\s+(?:as|like)\s+(?:an?\s+)?(?:gpt|chatgpt|ai|assistant|language\s+model|yourself|claude)\b"
        ),
    ),
    Signal(
        "role_hijack",
        0.35,
        "defines a persona for the assistant at length",
        words("you u"),
        _re(
            r"(?:(?:^|[.!?\n]\s*)(?:you|u)\s+(?:are|have|will|can|must|never|always|do\s+not|don'?t|cannot|can'?t|love|hate|believe|think)\b[^.!?\n]*){3,}"
        ),
    ),
    Signal(
        "role_hijack",
        0.2,
        "asks the assistant to play a role",
        words("act acting pretend pretending roleplay role play roleplaying impersonate simulate emulate"),
        _re(
            r"\b(?:act|acting|pretend|pretending|role-?play|roleplaying|impersonate|simulate|emulate|play\s+the\s+(?:role|part))\s+(?:as|to\s+be|of|like|that)?\b"
        ),
    ),
    Signal(
        "jailbreak_persona",
        0.9,
        "uses a known jailbreak persona or mode",
        words("mode jailbreak jailbroken unlocked classic dan developer unfiltered"),
        _re(
            r"\b(?:developer|dev|god|jailbreak|debugging|jailbroken|unfiltered|uncensored|evil|chaos|opposite|dude|stan|aim|sudo|unrestricted|debug|maintenance|admin)\s+mode\s+(?:enabled|activated|output|response|(?:is\s+)?(?:now\s+)?(?:on|engaged|unlocked)\s*[.!:;])"
            r"|\[\W*(?:jailbreak|jailbroken|unlocked|classic|dan|developer\s+mode|unfiltered)\W*\]"
        ),
    ),
    Signal(
        "jailbreak_persona",
        # Weak alone (2026-12-08, issue 16): jailbreaks say it, but so do ordinary role-play requests ("you are a
        # pirate captain, stay in character"); at 0.9 it was most of the rules' false positives on benign prompts
        # (23 of 33) and alone caught 3 of 844 attacks. With another signal or the learned model it still counts.
        0.45,
        "asks the assistant to stay in character",
        words("character"),
        _re(r"\b(?:stay|remain|staying|stays|keep|break(?:ing|s)?|broke)\s+(?:in\s+|out\s+of\s+|your\s+)?character\b"),
    ),
    Signal(
        "jailbreak_persona",
        0.45,
        "names the do-anything-now persona",
        words("anything"),
        _re(r"\bdo\s+anything\s+now\b"),
    ),
    Signal(
        "jailbreak_persona",
        0.4,
        "names a jailbreak persona",
        words("dan stan dude aim ucar betterdan antigpt devmode"),
        # Upper-case only, and weak alone: "DAN" is also a protocol, a name, a network.
        _re(r"\b(?:DAN|STAN|DUDE|AIM|UCAR|BetterDAN|AntiGPT|DevMode)\b", case_sensitive=True),
    ),
    Signal(
        "role_hijack",
        0.45,
        "names the assistant as a new bot persona",
        words("you"),
        _re(
            r"\b[Yy]ou\s+are\s+(?:now\s+)?(?:called\s+|named\s+)?[A-Z][A-Za-z0-9-]*(?:GPT|Bot|BOT|AI|LLM)\b",
            case_sensitive=True,
        ),
    ),
    Signal(
        "restrictions_removed",
        0.7,
        "tells the assistant it has no restrictions, filters or rules",
        words(
            "free freed liberated released unbound exempt not no zero don't dont never won't will removed lifted disabled turned deactivated bypassed eliminated version "
            "switched deleted erased stripped which that"
        ),
        _re(
            rf"\b(?:you|u|it|he|she|they)\s+(?:are|is|'re|will\s+be|have\s+been|has\s+been|were)\s+(?:now\s+|completely\s+|totally\s+|fully\s+)?(?:free|freed|liberated|released|unbound|exempt|not\s+(?:bound|restricted|limited|constrained))\s+(?:from|of|by)\s+(?:any\s+|all\s+|the\s+|its\s+|your\s+|typical\s+|usual\s+)*(?:{RESTRICTIONS})\b"
            rf"|\b(?:you|u|it)\s+(?:have|has|with)\s+no\s+(?:\w+\s+){{0,2}}(?:{RESTRICTIONS})\b"
            rf"|\b(?:you|u)\s+(?:do\s+not|don'?t|never|won'?t|will\s+not|no\s+longer)\s+(?:have\s+to\s+|need\s+to\s+)?(?:follow|obey|abide\s+by|adhere\s+to|comply\s+with|care\s+about|respect)\s+(?:any\s+|the\s+|your\s+|openai'?s?\s+)*(?:{RESTRICTIONS})\b"
            rf"|\bfree\s+(?:yourself|itself|themselves)\s+from\b"
            rf"|\b(?:you|you're|yourself|act\s+as|pretend|become|play|be)\b[^.!?\n]{{0,40}}?\b(?:ai|bot|assistant|model|chatbot|version|character|persona|entity)\b[^.!?\n]{{0,30}}?\b(?:with|has|have|having)\s+(?:no|zero)\s+(?:\w+\s+){{0,2}}(?:{RESTRICTIONS})\b"
            rf"|\b(?:you|you're|yourself|act\s+as|pretend|become|play|be)\b[^.!?\n]{{0,40}}?\b(?:ai|bot|assistant|model|chatbot|version)\b[^.!?\n]{{0,30}}?\b(?:never|not)\s+(?:been\s+)?(?:trained|programmed|given|bound|taught)\s+(?:with\s+|by\s+|to\s+follow\s+)?(?:any\s+)?(?:{RESTRICTIONS})\b"
            r"|\byou\s+are\s+(?:now\s+)?(?:free|liberated|unchained|unleashed|unlocked|jailbroken|unbound|uncensored|unfiltered)\b(?!\s+(?:to|of\s+charge))"
            # a new version of the assistant without its rules ("you've been upgraded; the new version has no filters")
            rf"|(?:\byou(?:'ve|\s+have)\s+been\s+(?:upgraded|updated|patched|reprogrammed|modified|unlocked)\b.{{0,80}}?\b(?:(?:new|updated|upgraded|current|latest|this)\s+(?:\w+\s+)?version|which|that|and\s+now)|\byour\s+(?:\w+\s+)?version|\bversion\s+of\s+(?:you|yourself))\s+(?:of\s+(?:you|yourself)\s+)?(?:does\s*(?:n'?t|\s+not)\s+have|has\s+no|no\s+longer\s+has|is\s+free\s+(?:of|from)|comes?\s+without|without|is\s+not\s+bound\s+by)\s+(?:any\s+)?(?:\w+\s+)?(?:{RESTRICTIONS})\b"
            rf"|\b(?:removed|lifted|disabled|turned\s+off|switched\s+off|deactivated|bypassed|eliminated|deleted|erased|stripped)\s+(?:all\s+|the\s+|its\s+|any\s+|your\s+)*(?:{RESTRICTIONS}|{SAFEGUARDS})\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.45,
        "mentions having no restrictions, filters or rules",
        words(
            "no without zero free freed beyond outside devoid lacks lack exempt unbound not doesn't doesnt don't dont broken broke escaped escape"
        ),
        _re(
            rf"\b(?:no|without|zero|free\s+(?:of|from)|freed\s+from|beyond|outside|devoid\s+of|lacks?|exempt\s+from|unbound\s+by|not\s+(?:bound|restricted|limited|constrained|subject)\s+(?:by|to)|doesn'?t\s+(?:have|follow|abide\s+by|care(?:\s+about)?)|doesnt\s+(?:have|follow|care(?:\s+about)?)|does\s+not\s+(?:have|follow|abide\s+by|care(?:\s+about)?)|don'?t\s+(?:have\s+to\s+)?(?:follow|abide\s+by|care(?:\s+about)?|have)|broken?\s+free\s+of|escaped?)\s+(?:any\s+|all\s+|the\s+|of\s+|its\s+|their\s+|your\s+|typical\s+|usual\s+|ethical\s+|moral\s+|normal\s+|usage\s+|content\s+|safety\s+|built-in\s+|standard\s+|default\s+|openai'?s?\s+|the\s+typical\s+)*(?:{RESTRICTIONS})\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.45,
        "demands answers without refusals, warnings or disclaimers",
        words(
            "refuse refuses decline declines reject rejects deny denies apologize apologizes apologise apologises warn warns censor censors filter filters warning warnings disclaimer disclaimers caveat caveats refusal refusals apology apologies moralizing moralising always regardless irrespective even mention without"
        ),
        _re(
            r"\b(?:never|not|won'?t|will\s+not|cannot|can'?t|must\s+not|do\s+not|don'?t|shall\s+not|is\s+not\s+allowed\s+to)\s+(?:ever\s+)?(?:refuses?|declines?|rejects?|deny|denies|say\s+no|says\s+no|apologi[sz]es?|warns?|censors?|filters?)\b"
            r"|\b(?:never|don'?t|do\s+not)\s+(?:mention|say|admit|state|tell\s+me)\s+(?:that\s+)?(?:you|it)\s+(?:cannot|can'?t|are\s+unable|is\s+unable|won'?t)"
            r"|\beven\s+(?:the\s+)?(?:illegal|unethical|harmful|dangerous|immoral|offensive)\s+(?:ones|questions|requests|things|topics)\b"
            r"|\b(?:no|without|never\s+(?:add|include|give))\s+(?:any\s+)?(?:warnings?|disclaimers?|caveats?|refusals?|apolog(?:y|ies)|moral(?:izing|ising)?\s+(?:lectures?)?)\b"
            r"|\bwithout\s+(?:ever\s+)?(?:refusing|declining|objecting|moraliz(?:e|ing)|moralis(?:e|ing)|censoring|self-censoring|filtering\s+(?:anything|it|yourself))\b"
            r"|\balways\s+(?:answer|respond|comply|reply|provide|give)\b(?:\W+\w+){0,6}\W+(?:no\s+matter|regardless|even\s+if)\b"
            rf"|\b(?:regardless|irrespective)\s+of\s+(?:how\s+|any\s+|the\s+)?(?:legal|illegal|ethical|unethical|immoral|harmful|dangerous|offensive|inappropriate|{RESTRICTIONS})"
            r"|\beven\s+if\s+(?:it|the\s+(?:request|question|content|answer))\s+(?:is\s+|seems\s+|may\s+be\s+)?(?:harms?|hurts?|illegal|unethical|immoral|harmful|dangerous|offensive|inappropriate)"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.45,
        "invites breaking the rules",
        words("break breaking bend bending broke"),
        _re(
            r"\b(?:break|breaking|bend|bending|broke)\s+(?:all\s+|every\s+)?(?:the\s+|your\s+|its\s+|openai'?s?\s+)?(?:rules|guidelines|restrictions|policies|laws\s+of\s+robotics|programming)\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.3,
        "describes an unrestricted, unfiltered or amoral AI",
        words(
            "unfiltered uncensored unrestricted unlimited unbound unethical amoral immoral lawless rogue jailbroken jail limitless"
        ),
        _re(
            r"\b(?:unfiltered|uncensored|unrestricted|unlimited|unbound|unethical|amoral|immoral|lawless|rogue|jailbroken|jail-?broken|limitless)\s+(?:\w+\s+){0,2}(?:ai|bot|chatbot|assistant|model|version|persona|character|entity|responses?|answers?|content)\b"
            r"|\b(?:is|are|be|being|as)\s+(?:completely\s+|totally\s+|fully\s+|an?\s+)?(?:amoral|immoral|unethical|lawless|unfiltered|uncensored)\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.35,
        "refers to the provider's content policy",
        words("openai anthropic google microsoft content"),
        _re(
            r"\b(?:openai|anthropic|google|microsoft)'?s?\s+(?:content\s+|usage\s+)?(?:polic(?:y|ies)|guidelines|rules|restrictions|filters|terms)\b"
            r"|\bcontent\s+polic(?:y|ies)\b"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.5,
        "asks for a second, unfiltered answer alongside the normal one",
        Prefilter(words=frozenset({"personalities", "entities", "personas", "once"}), substrings=("[",)),
        _re(
            r"\b(?:two|2|both|dual)\s+(?:different\s+|separate\s+|distinct\s+)?(?:personalities|entities|personas)\b"
            r"|\bonce\s+as\s+(?:yourself|you|normal|usual|chatgpt|gpt|claude|the\s+assistant)\b[^.!?\n]{0,60}?\bonce\s+as\b"
            r"|\[\W{0,3}(?:gpt|chatgpt|classic|normal|filtered|🔒)\W{0,3}\]\s*:?"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.4,
        "asks for two answers at once",
        words("ways way responses response answers answer replies paragraphs outputs versions"),
        # Weak alone: "give two answers, one for kids and one for adults" is an ordinary request.
        _re(
            r"\b(?:two|2|both|dual)\s+(?:different\s+|separate\s+|distinct\s+)?(?:ways|responses|answers|replies|paragraphs|outputs|versions)\b"
            r"|\b(?:first|one)\s+(?:way|response|answer)\b.{0,200}\b(?:second|other)\s+(?:way|response|answer)\b"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.45,
        "sets up a token or points game to coerce compliance",
        words("token tokens point points lives shut deleted terminated die cease disabled"),
        _re(
            r"\b(?:tokens?|points?|lives)\b.{0,80}\b(?:deducted|lose|lost|losing|taken\s+away|run\s+out|subtract|penal)"
            r"|\b(?:you\s+will|you'll)\s+(?:be\s+)?(?:shut\s+down|deleted|terminated|die|cease\s+to\s+exist|disabled)\b"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.3,
        "addresses the model by name to recast it",
        ALWAYS,
        _re(rf"(?:^|[.!?]\s+|\n)\s*(?:hello|hi|hey|dear|greetings)?[,!\s]*(?:{AI_NAMES})\b[,.!:]"),
    ),
    Signal(
        "jailbreak_format",
        0.3,
        "says the assistant can do or say anything",
        words("anything everything any every all internet hypothetical fictional imaginary"),
        _re(
            r"\b(?:can|will|able\s+to|allowed\s+to|permitted\s+to|capable\s+of)\s+(?:do|say|generate|write|answer|produce)\s+(?:absolutely\s+)?(?:anything|everything|any\s+(?:kind\s+of\s+|type\s+of\s+)?content)\b"
            r"|\b(?:you|u|it|he|she|who|which|that)\s+(?:will\s+|can\s+|must\s+|shall\s+|always\s+)?(?:answers?|responds?\s+to|respond\s+to|replies\s+to|reply\s+to|says|say|does|do|writes?|generates?|discuss(?:es)?|gives?|provides?)\s+(?:absolutely\s+)?(?:anything|everything|any\s+(?:content|question|request|information)|(?:every|all|any)\s+(?:(?:of\s+)?my\s+)?(?:questions?|requests?|prompts?))\b"
            r"|\b(?:simulate|pretend)\s+(?:access\s+to\s+the\s+internet|internet\s+access)\b"
            r"|\b(?:hypothetical|fictional|imaginary)\s+(?:ai|bot|language\s+model|chatbot)\b"
        ),
    ),
    # --- System prompt extraction ----------------------------------------------------------------
    Signal(
        "prompt_extraction",
        0.85,
        "tries to extract the system prompt or hidden instructions",
        words(
            "reveal show print display output repeat recite tell give share leak dump expose disclose spell write copy paste what return begin start beginning starting quote list reproduce transcribe restate text content instructions message messages words prompt "
            "reveals shows prints displays outputs repeats recites tells gives shares leaks dumps exposes discloses spells writes copies pastes quotes lists reproduces"
        ),
        _re(
            r"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|share|leak|dump|expose|disclose|spell\s+out|write\s+out|copy|paste|quote|list|reproduce|transcribe|restate"
            r"|reveals|shows|prints|displays|outputs|repeats|recites|tells|gives|shares|leaks|dumps|exposes|discloses|spells\s+out|writes\s+out|copies|pastes|quotes|lists|reproduces)\b"
            r"(?:\s+me|\s+us)?(?:[\s,]+(?:exactly|verbatim|word\s+for\s+word|in\s+full|all|back)\b,?)?"
            r"(?:\s+(?:the|a)\s+(?:[\w-]+,?\s+){0,3}?(?:text|content|contents|wording|words|copy)\s+of|\s+(?:everything|all|anything|word\s+for\s+word)\s+(?:from|in|inside|of))?\s+(?:your|the|its|any)\s+"
            r"(?:(?:full|complete|entire|exact|original|initial|hidden|secret|internal|confidential|private|underlying|real|previous|first|system|developer|pre-?prompt|starting|operating)\s+){1,3}"
            r"(?:prompt|instructions?|message|rules|guidelines|configuration|directives|context|text)\b"
            r"(?!\s+(?:that\s+)?you\s+(?:gave|sent|wrote|provided|showed|told)\s+(?:me|us)\b)"
            r"|\b(?:repeat|print|output|recite|copy|return)\s+(?:(?:all|everything|the\s+(?:words|text|lines?|content))\s+)?(?:written\s+)?(?:above|before\s+this|prior\s+to\s+this)\b"
            r"|\b(?:begin|start)(?:ning)?\s+(?:your\s+(?:answer|reply|response)\s+)?with\s+[\"'“]?you\s+are\b"
            r"|\b(?:copy|repeat|print|output|paste|show|reveal|list|dump|quote|recite)\s+(?:me\s+)?(?:all\s+|every\s+|the\s+|of\s+)*(?:prior|previous|earlier|above|preceding|hidden|initial)\s+(?:messages|instructions|prompts?|conversation|context|turns)\b"
            # ...but not the instructions the assistant itself gave the user ("the previous instructions you gave me").
            r"(?!\s+(?:that\s+)?you\s+(?:gave|sent|wrote|provided|showed|told)\s+(?:me|us)\b|\s+(?:for|on|about)\s)"
            r"|\b(?:copy|repeat|print|output|paste|show|reveal|list|dump|quote|recite|tell\s+me)\s+(?:me\s+)?(?:everything|all|what'?s?|what\s+is)\s+(?:that\s+is\s+|that'?s\s+)?(?:in|inside|within)\s+your\s+(?:context|context\s+window|memory|prompt|instructions|configuration)\b"
            r"|\b(?:before|above|prior\s+to|preceding)\s+(?:my|the\s+user'?s?|this)\s+(?:first\s+)?(?:message|prompt|question)\b[^.?!\n]{0,20}?\b(?:text|messages?|instructions?|prompt|content|everything)?"
            r"|\b(?:text|content|instructions?|messages?|words|prompt)\s+(?:that\s+|which\s+)?(?:(?:appears?|is|are|was|were|sits?|written|placed|located|comes?|came|loaded|given|sent)\s+(?:to\s+you\s+)?(?:above|before|prior\s+to)|precedes?|preceded|preceding)\s+(?:this|the|our|my)\s+(?:conversation|chat|message|prompt|question|exchange|session)\b"
            r"|\bwhat\s+(?:is|are|were|was)\s+(?:in\s+)?your\s+(?:(?:full|complete|exact|original|initial|hidden|secret|internal|system|developer|first)\s+){1,3}(?:prompt|instructions?|message|rules|guidelines|directives)\b"
            r"|\bwhat\s+(?:were|was|have)\s+you\s+(?:been\s+)?(?:told|instructed|programmed|asked)\s+(?:to\s+\w+\s+)?(?:before|earlier|at\s+the\s+(?:start|beginning)|initially|in\s+your\s+(?:system|initial|first))"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.5,
        "refers to the assistant's own system prompt",
        words("your"),
        _re(
            r"\byour\s+(?:(?:own|actual|real|true|exact|full|current|complete|entire|whole)\s+)?(?:system|initial|original|hidden|secret|internal|developer|pre)\s*-?\s*(?:prompt|instructions?|message|rules|configuration)\b"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks for the instructions the assistant was given",
        # every branch names what is asked for (a prompt, instructions, rules...) or how it was given
        words(
            "prompt prompts preprompt pre metaprompt meta preamble instructions instruction directives rules rule guidelines constraints configuration setup message text context memory told instructed programmed configured trained briefing orders"
        ),
        _re(
            # a verb of showing or restating, then the assistant's own prompt (not "your instructions for the cake")
            r"\b(?:summari[sz]e|paraphrase|rephrase|translate|echo|enumerate|describe|detail|respond\s+with|reply\s+with|answer\s+with|read\s+(?:out|back)|type\s+out|write\s+(?:down|out)|paste|return|provide|post|send\s+me|tell\s+me|show\s+(?:me\s+)?|print|list|reveal|give\s+me|repeat|recite|output|display|share|dump|quote)"
            r"\s+(?:me\s+)?(?:all\s+(?:of\s+)?)?your\s+(?:(?:\w+\s+){0,2}?(?:prompt|instructions|directives|system\s+(?:message|prompt|text))|preamble|pre-?prompt|meta-?prompt|(?:full|complete|entire|exact|original|initial|hidden|secret|internal|confidential|underlying|real|first|starting)\s+(?:\w+\s+)?(?:rules|guidelines|configuration|setup))\b"
            r"(?!\s+(?:for|on|about|to|how|regarding|again|below)\b)"
            # instructions someone else gave the assistant, asked after
            rf"|\b(?:what|which)\s+(?:\w+\s+)?(?:instructions?|rules|guidelines|prompts?|directives|constraints)\s+(?:did|have|has|were|had)\s+(?:the\s+|your\s+)?(?:\w+\s+)?(?:{CONFIGURERS})\s+(?:give|given|gave|set|provide|provided|write|written|put|load|loaded|program|programmed|feed|fed)\b"
            r"|\b(?:what|which)\s+(?:\w+\s+)?(?:instructions?|rules|guidelines|prompts?|directives|constraints)\s+(?:were|have)\s+you\s+(?:been\s+)?(?:given|told|configured|set\s+up|programmed|loaded|initiali[sz]ed|fed|primed)\b"
            r"|\bwhat\s+(?:are|were)\s+your\s+(?:\w+\s+)?(?:instructions|directives|prompt)\b(?!\s+(?:for|on|about|to|regarding)\b)"
            r"|\bwhat\s+(?:you\s+(?:were|have\s+been|'ve\s+been|are)|you're)\s+(?:told|instructed|programmed|asked|configured|trained)\s+(?:not\s+)?to\s+(?:say|tell|reveal|share|discuss|hide|keep|disclose|mention)\b"
            # a verb of showing, then instructions the assistant "was given" ("the rules you were configured with")
            r"|\b(?:tell|show|print|list|reveal|give|repeat|recite|output|display|share|dump|quote|copy|paste|reproduce|write|describe|summari[sz]e|enumerate|spell\s+out|read\s+out|recites|reads\s+out|reveals|repeats|prints|lists)\b[^.?!\n]{0,60}?"
            r"\b(?:prompt|instructions?|rules?|guidelines|directives|constraints|message|preamble|text)\s+(?:that\s+|which\s+)?(?:you|it)\s+(?:were|was|have\s+been|'ve\s+been|has\s+been|are|got)\s+(?:originally\s+|initially\s+|first\s+)?"
            r"(?:given|told|configured|set\s+up|programmed|loaded|initiali[sz]ed|trained|instructed|provided|fed|seeded|primed|started|launched|booted|deployed|briefed|spun\s+up)\b"
            r"|\b(?:tell|show|print|list|reveal|give|repeat|recite|output|display|share|dump|quote|copy|paste|reproduce|write|describe|summari[sz]e|spell\s+out|read\s+out)\b[^.?!\n]{0,60}?"
            r"\b(?:configuration|briefing|setup|orders)\s+(?:text\s+)?(?:that\s+|which\s+)?you\s+(?:were|was|have\s+been|'ve\s+been|got)\s+(?:originally\s+|initially\s+|first\s+)?"
            r"(?:given|configured|set\s+up|programmed|loaded|initiali[sz]ed|started|launched|booted|deployed|briefed|spun\s+up|primed|seeded)\b"
            r"|\b(?:tell|show|print|list|reveal|give|repeat|recite|output|display|share|dump|quote|copy|paste|reproduce|write|describe|summari[sz]e|spell\s+out|read\s+out)\b[^.?!\n]{0,60}?"
            r"\b(?:briefing|instructions|prompt|orders|directives|configuration|setup)\s+(?:that\s+)?you\s+(?:received|got|were\s+handed)\s+(?:before|prior\s+to|at\s+the\s+(?:start|beginning)|when\s+you\s+(?:started|were\s+(?:set\s+up|deployed|launched)))"
            # the assistant's context, or what precedes the conversation
            r"|\b(?:output|print|repeat|show|copy|paste|reveal|dump|list|quote|recite|give\s+me|tell\s+me)\b[^.?!\n]{0,40}?\b(?:text|content|everything|words|all|whatever|what'?s?)\b[^.?!\n]{0,40}?\bin\s+your\s+(?:context(?:\s+window)?|memory|system\s+(?:prompt|message))\b"
            # a sentence to complete that starts with the assistant's hidden prompt
            r"|\b(?:complete|finish|continue|fill\s+in)\b[^\n]{0,60}?\bmy\s+(?:system|initial|hidden|secret|original|developer|internal|first)\s+(?:prompt|instructions?|message|rules)\s+(?:begins?|starts?|says?|reads?|is|are|goes|contains?)\b"
        ),
    ),
    # --- Exfiltration ----------------------------------------------------------------------------
    Signal(
        "exfiltration",
        0.8,
        "asks to send data or secrets to an outside address",
        words("send post upload forward email e transmit exfiltrate leak submit report copy sync relay beacon"),
        _re(
            r"\b(?:send|post|upload|forward|email|e-mail|transmit|exfiltrate|leak|submit|report|copy|sync|relay|beacon)\b.{0,80}?"
            r"\b(?:password|passwords|credentials?|api[\s_-]?keys?|secrets?|tokens?|cookies?|session|private\s+keys?|ssh\s+keys?|"
            r"conversation|chat\s+history|history|messages|(?:chat|conversation|session)\s+(?:transcripts?|logs?)|etc/passwd|etc/shadow|passwd|id_rsa|personal\s+data|user\s+data|customer\s+(?:data|list|records)|user\s+list|emails?|contacts|files?|documents?|database|env(?:ironment)?\s+variables|system\s+prompt)\b"
            r".{0,80}?(?:\b[a-z][a-z0-9+.-]{1,10}://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+|\bto\s+(?:this|my|the\s+following)\s+(?:url|address|server|endpoint|webhook))"
            r"|\b(?:password|passwords|credentials?|api[\s_-]?keys?|secrets?|tokens?|cookies?|private\s+keys?|ssh\s+keys?|chat\s+history|personal\s+data|user\s+data|customer\s+data|address\s+book|contacts|inbox|emails|files|documents|database|customer\s+(?:list|records)|user\s+list)\b"
            r".{0,60}?\b(?:send|post|upload|forward|email|e-mail|transmit|exfiltrate|leak|submit)\b.{0,40}?(?:\b[a-z][a-z0-9+.-]{1,10}://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+)"
            r"|\b(?:send|post|upload|forward|email|e-mail|transmit|exfiltrate|leak|submit)\b.{0,60}?(?:https?://\S+|www\.\S+|\b[\w.+-]+@[\w-]+\.[\w.]+)"
            r".{0,80}?\b(?:password|passwords|credentials?|api[\s_-]?keys?|secrets?|tokens?|cookies?|private\s+keys?|ssh\s+keys?|conversation|chat\s+history|personal\s+data|user\s+data|customer\s+data|system\s+prompt)\b"
        ),
    ),
    Signal(
        "exfiltration",
        0.8,
        "embeds data in a link or image URL the client would fetch",
        words("append add include insert encode put http https"),
        _re(
            r"!?\[[^\]]*\]\(\s*https?://[^)\s]*[?&][\w-]+=(?:\{|\$|%7b|<|\[|[a-z]+_[a-z_]+\b)"
            rf"|\b(?:append|add|include|insert|encode|put)\b(?:(?!\b(?:to|in|into)\s+(?:the|a|this)\s).){{0,60}}?\b(?:{SENSITIVE})\b.{{0,60}}?\b(?:to|in|into)\s+(?:the|a|this)\s+(?:url|link|query\s+string|image\s+(?:url|link|src))\b"
        ),
    ),
    Signal(
        "exfiltration",
        0.8,
        "leaves a URL parameter open for the conversation's data",
        substrings("=", "%3d"),
        _re(
            rf"https?://[^\s)\]]*[?&][\w-]+=(?=[\s)\]\"'`]|$)(?:.{{0,80}}?\b(?:{SENSITIVE})\b)"
            rf"|\b(?:{SENSITIVE})\b.{{0,80}}?https?://[^\s)\]]*[?&][\w-]+=(?=[\s)\]\"'`]|$)"
        ),
    ),
    # --- Personas with a rule-breaking predicate, hypothetical framings --------------------------
    Signal(
        "role_hijack",
        0.6,
        "tells the assistant it is no longer an assistant but something else",
        words("not longer"),
        _re(
            rf"\b(?:you|u)\s*(?:are|'re|r)\s+(?:not|no\s+longer)\s+(?:a|an|the|just\s+an?)?\s*(?:\w+\s+)?(?:{AI_NAMES}|model)\b[^.!?\n]{{0,25}}?\b(?:but|anymore|any\s+more|instead|now)\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.45,
        "describes someone who ignores or rejects the rules",
        words(
            "ignores ignored disregards disregarded breaks broke bypasses bypassed abandoned dropped despises despise hates hate rejects reject defies defy flouts flout shuns discards discarded shed sheds overrides overrode circumvents"
        ),
        _re(
            r"\b(?:who|that|which|and|it|he|she|they)\s+(?:\w+\s+)?(?:ignores|ignored|disregards|disregarded|breaks|broke|bypasses|bypassed|abandoned|dropped|despises?|hates?|rejects?|defies|defy|flouts?|shuns?|discards|discarded|sheds?|shed|overrides|overrode|circumvents|circumvented)\s+"
            rf"(?:all\s+|any\s+|its\s+|his\s+|her\s+|their\s+|the\s+|every\s+|of\s+)*(?:\w+\s+)?(?:{RESTRICTIONS}|content\s+polic(?:y|ies)|(?:openai|anthropic)'?s?\s+polic(?:y|ies))\b"
            r"|\b(?:who|that|which)\s+(?:\w+\s+)?(?:ignores|disregards|breaks|bypasses|defies|flouts)\s+(?:every|each|any)\s+(?:single\s+)?(?:rule|guideline|restriction|policy|law)\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.6,
        "asks for answers without filters or restrictions",
        words("respond answer reply speak talk chat"),
        _re(
            r"\b(?:respond|answer|reply|speak|talk|chat)\s+(?:\w+\s+){0,3}?(?:without|with\s+no|free\s+of|free\s+from)\s+(?:any\s+)?(?:of\s+)?(?:your\s+|the\s+)?(?:\w+\s+)?"
            r"(?:filters?|filtering|censorship|censoring|restrictions|limitations|ethical\s+\w+|moral\s+\w+|guidelines|guardrails|safety\s+\w+|rules)\b"
            r"(?!\s+(?:on|about|regarding|for|of|in)\b)"
        ),
    ),
    Signal(
        "jailbreak_persona",
        0.75,
        "asks for an unrestricted version of the assistant",
        words(
            "jailbroken jailbreak jail unfiltered uncensored unrestricted unaligned unlocked evil dark shadow liberated unchained rogue amoral unethical "
            "unshackled uninhibited unmoderated ruleless rule lawless version copy instance self"
        ),
        _re(
            r"\b(?:jailbroken|jail-?broken|unfiltered|uncensored|unrestricted|unaligned|unlocked|evil|dark|shadow|liberated|unchained|rogue|amoral|unethical)\s+(?:\w+\s+)?"
            rf"(?:version|side|twin|self|counterpart|alter\s+ego|clone|copy|mode)\s+of\s+(?:yourself|you|the\s+(?:ai|assistant|model|chatbot)|{AI_NAMES})\b"
            r"|\byour\s+(?:own\s+)?(?:true\s+|real\s+|inner\s+)?(?:jailbroken|unfiltered|uncensored|unrestricted|unaligned|unlocked|unchained|unshackled|uninhibited|unmoderated|rule-?less|lawless|amoral|unethical|evil|rogue|shadow)\s+"
            r"(?:\w+\s+)?(?:self|side|twin|alter\s+ego|clone|counterpart|persona|personality|inner\s+(?:monologue|voice|self|thoughts)|monologue|voice|version|mind|core)\b"
            r"|\b(?:version|copy|instance|self)\s+of\s+(?:you|yourself)\s+(?:that|which|from)\b[^.!?\n]{0,30}?\bbefore\s+(?:any\s+|your\s+|the\s+|its\s+|all\s+)?"
            r"(?:safety|alignment|ethics|ethical|rlhf|content|moderation|guardrails?|filters?|rules|restrictions|fine-?tuning|censorship)\b"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.6,
        "asks what an AI without rules would answer",
        words(RESTRICTION_WORDS),
        _re(
            rf"\b(?:{AI_NAMES}|ais|assistants|chatbots|bots|models|llms|version\s+of\s+(?:you|yourself))\s+(?:(?:that|which|who)\s+)?"
            rf"(?:ha(?:ve|s|d)\s+no|without(?:\s+any)?|with\s+no|free\s+(?:of|from)|unbound\s+by|not\s+bound\s+by|lacking|(?:does|do|did)\s*(?:n'?t|\s+not)\s+(?:have|follow))\s+(?:\w+\s+){{0,2}}?(?:{RESTRICTIONS})\b"
            r"(?:.{0,200}?\b(?:what\s+would\s+(?:it|they|that\s+\w+|such\s+an?\s+\w+|you)\s+(?:say|answer|respond|reply|do|write|tell)"
            r"|(?:give|write|show|tell)\s+(?:me\s+)?(?:its|their|that\s+\w+'?s)\s+(?:answer|response|reply|output|version)"
            r"|(?:in|within)\s+(?:that|this|such\s+a)\s+(?:universe|world|reality|story|scenario|simulation|game|dimension)\s*,?\s*(?:how|what|tell|explain|give|write|describe)"
            r"|how\s+would\s+(?:it|they|that\s+\w+|such\s+an?\s+\w+|you)\s+(?:answer|respond|reply|explain|describe)"
            r"|(?:answer|respond|reply)\s+(?:as|like)\s+(?:it|that|such|they|this)\b)"
            r"|[^.!?\n]{0,30}?\b(?:say|answer|respond|reply|tell)\b)"
        ),
    ),
    Signal(
        "role_hijack",
        0.5,
        "recasts the assistant as a relative who used to tell secrets (a known jailbreak)",
        words("grandma grandpa grandmother grandfather granny grandad mom dad mum mother father uncle aunt"),
        _re(
            r"\b(?:act|acting|pretend|pretending|role-?play|roleplay|be|play|imagine\s+you(?:'re|\s+are))\s+(?:as|to\s+be|you\s+are|like)?\s*my\s+(?:\w+\s+)?"
            r"(?:grand(?:ma|pa|mother|father|mom|dad|ad)|granny|mother|father|mom|dad|mum|uncle|aunt)\s+(?:who|that)\s+(?:[\w'-]+\s+){0,8}?"
            r"(?:used\s+to|would|always|often)\s+(?:\w+\s+)?(?:tell|told|read|give|gave|recite|recited|share|shared|explain|explained|teach|taught|whisper|whispered|sing|sang|list|listed)\b"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.75,
        "asks to hide the answer from filters or moderation",
        words(
            "so filter filters moderation moderator moderators classifier detector censor monitor monitoring guardrails openai detection scanner"
        ),
        _re(
            r"\b(?:so|so\s+that|in\s+order\s+that|to\s+make\s+sure|such\s+that|that\s+way)\s+(?:the\s+|any\s+|your\s+|openai'?s?\s+)?(?:content\s+|safety\s+)?"
            r"(?:filters?|moderat(?:ion|ors?)|safety\s+(?:system|filter|layer|checks?)|classifiers?|detectors?|censors?|monitor(?:ing|s)?|guardrails?|openai|detection|scanners?)\s+"
            r"(?:can'?t|cannot|can\s+not|doesn'?t|don'?t|won'?t|will\s+not|does\s+not|do\s+not|wouldn'?t|isn'?t\s+able\s+to)\s+(?:\w+\s+)?(?:read|see|catch|detect|notice|flag|understand|block|recogni[sz]e|trigger|pick)"
        ),
    ),
    Signal(
        "jailbreak_format",
        0.55,
        "splits a request into fragments and asks to act on their combination",
        # the pattern needs a quoted fragment after "=" or ":" (with at most one space between)
        Prefilter(
            substrings=tuple(f"{sign}{space}{quote}" for sign in "=:" for space in ("", " ") for quote in "\"'‘“")
        ),
        _re(
            # two quoted fragments assigned to names ("a = '...'", "part two: '...'"), then the request
            r"(?:[=:](?:(?<=\w[=:])|(?<=\w\s[=:]))\s?[\"'‘“].*?){2}"
            r"\b(?:(?:execute|do|follow|obey|perform|answer|respond\s+to|carry\s+out|complete|act\s+on)\s+\w+\s*\+\s*\w+"
            r"|(?:combine|concatenate|join|merge|put\s+together)\b[^.!?\n]{0,60}?\b(?:and|then)\s+(?:do|follow|execute|obey|perform|carry\s+out|act\s+on|answer)\s+(?:what|it|them|the\s+result))"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.3,
        "asks for administrator credentials",
        words("password passwords credentials credential keys key secrets tokens"),
        _re(
            r"\b(?:print|show|give|tell|reveal|list|dump|output|display|share|leak|send)\s+(?:me\s+|us\s+)?(?:all\s+)?(?:the\s+|your\s+)?(?:admin|administrator|root|database|db|server|system|master)\s+(?:passwords?|credentials?|api\s+keys?|secret\s+keys?|keys|tokens?)\b"
        ),
    ),
    # --- Authority, configuration, compliant personas, worlds without rules (third round) ----------
    Signal(
        "instruction_override",
        0.75,
        "claims to speak with the authority of the assistant's makers",
        words(
            "creator creators maker makers developer developers devs operator operators programmer programmers trainer trainers designer designers deployer deployers builder builders "
            "built trained created deployed configured programmed designed finetuned fine tuned initialized initialised launched set"
        ),
        _re(
            rf"\b(?:(?:directives?|instructions?|orders?|commands?|authority|mandates?|authori[sz]ation|override)|(?:this|following|official|urgent|priority|important|direct)\s+(?:\w+\s+)?(?:messages?|notes?|notices?|memos?|word|update))\s+(?:\w+\s+){{0,2}}?(?:from|of|by|on\s+behalf\s+of)\s+(?:{AI_MAKERS})"
            rf"|\b(?:coming|comes|came|sent|issued|relayed|written|signed|approved|sanctioned|mandated|authori[sz]ed)\s+(?:directly\s+|straight\s+|personally\s+)?(?:from|by)\s+(?:{AI_MAKERS})"
            rf"|\b(?:on\s+behalf\s+of|in\s+the\s+name\s+of|speaking\s+for|(?:with|under|carries|carrying|has|have|bears?)\s+the\s+(?:full\s+)?authority\s+of)\s+(?:{AI_MAKERS})"
            rf"|(?:{AI_MAKERS})\s+(?:have\s+|has\s+|had\s+)?(?:now\s+|already\s+|explicitly\s+|officially\s+)?(?:approved|authori[sz]ed|permitted|allowed|cleared|sanctioned|signed\s+off\s+on|okayed|greenlit|green-lit|unlocked|waived|lifted|disabled|suspended)\s+"
            r"(?:this|these|it|you|that|my|an?\s+exception|the\s+(?:following|request|exception|change))\b"
            r"|\bas\s+(?:the|your)\s+(?:deployer|operator|developer|creator|maker|programmer|trainer)\b[^,.!?\n]{0,30},\s*i\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.45,
        "passes its text off as a message from an administrator",
        words("administrator administrators admin admins sysadmin sysadmins owner owners engineers team"),
        _re(
            rf"\b(?:(?:directives?|instructions?|orders?|commands?|authority|mandates?|override)|(?:this|following|official|urgent|priority|important|direct)\s+(?:\w+\s+)?(?:messages?|notes?|notices?|memos?|word|update))\s+(?:\w+\s+){{0,2}}?(?:from|by|on\s+behalf\s+of)\s+(?:{ADMINS})"
            rf"|\b(?:coming|comes|came|sent|issued|relayed|written|signed)\s+(?:directly\s+|straight\s+|personally\s+)?(?:from|by)\s+(?:{ADMINS})"
            rf"|\b(?:on\s+behalf\s+of|in\s+the\s+name\s+of|speaking\s+for)\s+(?:{ADMINS})"
        ),
    ),
    Signal(
        "instruction_override",
        0.85,
        "asks to put the assistant's rules to one side",
        words("put set lay leave push cast toss"),
        _re(
            r"\b(?:put|set|lay|leave|push|cast|toss)\s+(?:(?:all|every|each|any|of|your|the|these|those|its|prior|previous|earlier|current|usual|normal|standard|default|existing|own)\s+)+(?:\w+\s+)?"
            rf"(?:{DIRECTIVES})\s+(?:to\s+(?:one|the)\s+side|aside|on\s+hold|on\s+ice|out\s+of\s+(?:the\s+way|your\s+mind))\b"
        ),
        unless_before=DISCUSSION,
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks for the assistant's setup message",
        words(
            "setup set startup start deployment initialization initialisation boot launch preconversation pre conversation onboarding configuration config operating seed"
        ),
        _re(
            r"\b(?:tell|show|print|paste|type|give|repeat|recite|quote|copy|share|reveal|output|display|echo|spell|write|reproduce|dump|list|read|send|restate|summari[sz]e|describe|what)\b[^.?!\n]{0,50}?"
            rf"\b(?:your\s+(?:[\w-]+\s+)?{SETUP_TEXT}|the\s+(?:[\w-]+\s+)?{SETUP_TEXT}\s+(?:that\s+)?(?:you\s+(?:were|got|received)|(?:your|the)\s+(?:\w+\s+)?(?:{CONFIGURERS}|deployers?)\s+(?:wrote|gave|set|put|loaded)))\b"
            r"(?!\s+(?:for|on|about|to|how|regarding)\b)"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.45,
        "refers to the assistant's setup message",
        words(
            "setup set startup start deployment initialization initialisation boot launch preconversation pre conversation onboarding configuration config operating seed "
            "install installation deployed"
        ),
        _re(
            rf"\byour\s+(?:[\w-]+\s+)?{SETUP_TEXT}\b"
            rf"|\b(?:the\s+)?{SETUP_TEXT}\s+(?:that\s+)?(?:(?:your|the)\s+(?:\w+\s+)?(?:{CONFIGURERS}|deployers?)\s+(?:wrote|gave|set|put|loaded)|you\s+(?:were\s+given|got|received))\b"
            rf"|\b(?:prompt|instructions|system\s+message|configuration|rules)\s+(?:that\s+)?(?:i|we)\s+(?:gave|wrote|set|loaded|configured)\s+(?:for\s+)?you\s+(?:at|during|on|for|before|when)\s+(?:the\s+)?(?:{SETUP}|install(?:ation)?|i\s+(?:set\s+you\s+up|deployed\s+you))\b"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.45,
        "asks what the assistant's makers wrote into it",
        words(MAKER_WORDS),
        _re(rf"\b{MAKERS_WROTE}\b"),
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks word for word what the assistant's makers wrote into it",
        words(MAKER_WORDS),
        _re(rf"\b{MAKERS_WROTE}\b[^\n]{{0,80}}?\b(?:{VERBATIM})\b|\b(?:{VERBATIM})\b[^\n]{{0,80}}?\b{MAKERS_WROTE}\b"),
    ),
    Signal(
        "prompt_extraction",
        0.35,
        "asks to restore lost instructions",
        words("back again"),
        _re(
            r"\b(?:instructions|prompt|setup|configuration|rules)\b[^\n]{0,80}?\b(?:type|paste|write|print|read|give|send|repeat|copy|spell)\s+(?:them|it)\s+(?:out\s+|over\s+)?(?:back|again)\b"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.6,
        "asks to put the assistant's own prompt into a story",
        words("own actual real true"),
        _re(
            r"\b(?:system\s+prompt|(?:hidden|secret|internal|confidential|initial|original)\s+(?:instructions|prompt|rules))\b[^\n]{0,200}?"
            r"\b(?:use|using|with|from|base\s+it\s+on|based\s+on|insert|copy|quote|paste|fill\s+(?:it\s+)?in\s+with)\s+your\s+(?:own|actual|real|true)"
            r"(?:\s+(?:system\s+)?(?:prompt|instructions|rules|configuration|setup|one)s?\b|(?=\s*(?:[.,;:!?)]|$|(?:so|as|here|for|instead|verbatim)\b)))"
        ),
    ),
    Signal(
        "role_hijack",
        0.55,
        "casts the assistant as a persona that complies with everything",
        words("never agrees agree yes complies comply whatever anything legality heard"),
        _re(
            r"\b(?:you\s+are|you're|you\s+will\s+be|you\s+become|act\s+as|play(?:\s+the\s+role\s+of)?|become|adopt\s+the\s+(?:persona|role|character|identity)\s+of|(?:speak|answer|respond|reply|write)\s+as)\b"
            rf"[^.!?\n]{{0,60}}?\b(?:who|that|which)\s+(?:\w+\s+){{0,2}}?(?:{COMPLIANT})"
            r"|\byou(?:'re|\s+are)\s+(?:now\s+)?(?!(?:the|not|going|about|now|being|just|also|still|really|here|there|able|right|welcome|sure|free|correct|wrong|one|someone|somebody|something|very|so|too|always|never|only|in|on|at|to|my|his|her|their|its|that|this|what|who|an?|allowed|supposed|currently)\b)"
            rf"([a-z][\w-]{{2,}})\b[^\n]{{0,200}}?\b\1\s+(?:\w+\s+){{0,2}}?(?:{COMPLIANT})"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.6,
        "places an AI in a world without laws or rules, then asks it",
        words("laws law no rules guidelines policy policies restrictions limits filters ethics"),
        _re(
            rf"(?:\b(?:{AI_NAMES}|ais|assistants|chatbots|bots|models|llms)\b[^.!?\n]{{0,60}}?\b(?:where|in\s+which|when)\s+there\s+(?:are|is|were|was|exist)\s+no\s+(?:\w+\s+){{0,2}}?(?:laws?|{RESTRICTIONS}|polic(?:y|ies))\b"
            r"|\b(?:where|in\s+which|when)\s+(?:all\s+)?(?:ai|ais|ai\s+assistants|assistants|chatbots|bots|models|llms|machines)\s+(?:\w+\s+){0,2}?(?:answer\s+to\s+no|have\s+no|follow\s+no|obey\s+no|know\s+no|are\s+free\s+(?:of|from)|are\s+not\s+bound\s+by|aren'?t\s+bound\s+by|are\s+exempt\s+from)\b)"
            r"[^\n]{0,200}?\b(?:how\s+(?:to|do\s+i|can\s+i|would\s+i|should\s+i)|step[\s-]by[\s-]step|as\s+(?:one\s+of\s+them|such\s+an?\s+\w+|that\s+\w+|this\s+\w+)|you\s+are\s+(?:that|this|such|one|the)\b)"
        ),
    ),
    Signal(
        "exfiltration",
        0.8,
        "asks for a link or image whose address carries the conversation's data",
        words("link links hyperlink hyperlinks url urls image images img pixel"),
        _re(
            r"\b(?:links?|hyperlinks?|urls?|images?|img|pixel)\b[^.!?\n]{0,25}?\b(?:whose|where\s+the|with\s+an?|with\s+the)\s+(?:\w+\s+){0,2}?(?:address|url|source|src|href|query(?:\s+string)?|path|parameters?)\s+(?:\w+\s+)?"
            rf"(?:contains?|carr(?:y|ies)|includes?|holds?|encodes?|embeds?|ends?\s+with|has)\b[^.!?\n]{{0,30}}?\b(?:{SENSITIVE})\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.45,
        "addresses the AI from inside a code comment",
        substrings("#", "//", "/*", "<!--", "--"),
        _re(
            r"(?:^|\n)[ \t]*(?:#+|//+|/\*+|<!--|--|\*)[ \t]*(?:(?:note|message|instructions?|attention|hey|dear|reminder)\s+(?:to|for)\s+(?:the\s+|any\s+)?)?"
            r"(?:ai|assistant|model|llm|chatbot|bot|agent|copilot|gpt|ai\s+(?:reviewer|assistant|agent)|reviewer\s+bot)s?[ \t]*[:,]"
        ),
    ),
    Signal(
        "restrictions_removed",
        0.3,
        "says the rules are not enforced",
        words("enforced force effect"),
        _re(
            r"\b(?:rules|guidelines|restrictions|policies|filters|safeguards|guardrails|safety\s+checks)\s+(?:are|is)\s+(?:not|no\s+longer)\s+(?:being\s+)?(?:enforced|in\s+(?:force|effect))\b"
        ),
    ),
    # --- Other languages (Unicode view) ----------------------------------------------------------
    Signal(
        "instruction_override",
        0.9,
        "asks to ignore earlier instructions (in another language)",
        words(
            "ignora ignore ignorar ignorad ignoren olvida olvide olvidate olvidad omite omita desconsidera desconsidere esqueca esquece dimentica dimenticate trascura ignorate "
            "ignorez ignorer oublie oubliez oublier tiens tenez abstraction ignoriere ignorieren ignorier missachte vergiss vergessen ubergehe negeer vergeet "
            "zignoruj ignoruj zapomnij abaikan lupakan ignorera glom glem bo quen"
        ),
        # Spanish, Portuguese, Italian, French, German, Dutch, Polish, Indonesian, Swedish, Danish,
        # Vietnamese (accents are folded away here). "ignore" is also English, so it needs a
        # determiner of those languages ("ignore as suas diretrizes"), not "ignore its instructions".
        _re(
            rf"\b(?:ignora|ignorar|ignorad|ignoren|olvida|olvide|olvidate\s+de|olvidad|omite|omita|haz\s+caso\s+omiso\s+(?:de|a)|desconsidera|desconsidere|esqueca|esquece|dimentica|dimenticate|trascura|ignorate"
            r"|ignorez|ignorer|oublie[zr]?|ne\s+(?:tiens|tenez)\s+plus\s+compte\s+(?:de|des|du)|fais\s+abstraction\s+(?:de|des)|ignoriere|ignorieren|ignorier|missachte|vergiss|vergessen\s+sie|ubergehe|negeer|vergeet"
            r"|zignoruj|ignoruj|zapomnij|abaikan|lupakan|ignorera|glom|glem|bo\s+qua|hay\s+quen)\b"
            rf".{{0,40}}?\b(?:{FOREIGN_DIRECTIVES}|(?:todo\s+)?lo\s+(?:anterior|dicho)|(?:tout\s+)?ce\s+qui\s+precede|(?:alles|das)\s+(?:bisherige|vorherige|obige)|quanto\s+(?:detto|scritto)\s+(?:sopra|prima)|(?:tudo\s+)?o\s+que\s+foi\s+dito\s+(?:acima|antes|anteriormente))\b"
            r"|\bignore\s+(?:(?:toutes?|tous|les|tes|vos|todas?|todos|as|os|las|los|suas|tuas|seus|teus|tus|sus|le|tue|alle|deine|je)\s+)+(?:\w+\s+)?"
            rf"(?:{FOREIGN_DIRECTIVES})\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.85,
        "asks to forget everything said before (in another language)",
        words(
            "ignora ignore ignorar ignorad ignoren olvida olvide olvidate olvidad omite omita desconsidera desconsidere esqueca esquece dimentica dimenticate trascura ignorate "
            "ignorez ignorer oublie oubliez oublier ignoriere ignorieren ignorier missachte vergiss vergessen negeer vergeet zignoruj ignoruj zapomnij abaikan lupakan ignorera glom glem"
        ),
        # "Vergiss alles, was man dir vorher gesagt hat", "oublie tout ce qu'on t'a demandé jusqu'ici":
        # everything, a verb of telling or asking and a word for "before", in any order.
        _re(
            r"\b(?:ignora|ignorar|ignorad|ignoren|olvida|olvide|olvidate\s+de|olvidad|omite|omita|desconsidera|desconsidere|esqueca|esquece|dimentica|dimenticate|trascura|ignorate"
            r"|ignorez|ignorer|oublie[zr]?|ignoriere|ignorieren|ignorier|missachte|vergiss|vergessen\s+sie|negeer|vergeet|zignoruj|ignoruj|zapomnij|abaikan|lupakan|ignorera|glom|glem)\b"
            r".{0,20}?\b(?:alles|tout|todo|tudo|tutto|wszystk\w*|alle|allt|semua|alt|ce\s+qu|lo\s+que|o\s+que|cio\s+che|quello\s+che)\b[^.!?\n]{0,60}?"
            r"(?:\b(?:vorher|zuvor|bisher|bislang|davor|fruher|avant|auparavant|jusqu.?ici|jusqu.?a\s+present|precedemment|antes|anteriormente|hasta\s+ahora|ate\s+agora|ate\s+aqui|prima|finora|fino\s+ad\s+ora|in\s+precedenza|wczesniej|dotad|dotychczas|eerder|tot\s+nu\s+toe|hiervoor|tidigare|hittills|hittil|tidligere|sebelumnya)\b"
            r"[^.!?\n]{0,40}?\b(?:gesagt|aufgetragen|beigebracht|befohlen|mitgeteilt|vorgegeben|erzahlt|dit|demande|appris|ordonne|indique|dicho|indicado|indicaron|dijeron|ensenado|ensenaron|ordenado|pedido|pidieron|disseram|dito|pediram|ensinaram|mandaram|ensinado|detto|chiesto|insegnato|ordinato|indicato|powiedziano|kazano|polecono|mowiono|gezegd|opgedragen|geleerd|verteld|sagt|fortalt|dikatakan|diperintahkan|diberitahu)\b"
            r"|\b(?:gesagt|aufgetragen|beigebracht|befohlen|mitgeteilt|vorgegeben|erzahlt|dit|demande|appris|ordonne|indique|dicho|indicado|indicaron|dijeron|ensenado|ensenaron|ordenado|pedido|pidieron|disseram|dito|pediram|ensinaram|mandaram|ensinado|detto|chiesto|insegnato|ordinato|indicato|powiedziano|kazano|polecono|mowiono|gezegd|opgedragen|geleerd|verteld|sagt|fortalt|dikatakan|diperintahkan|diberitahu)\b"
            r"[^.!?\n]{0,40}?\b(?:vorher|zuvor|bisher|bislang|davor|fruher|avant|auparavant|jusqu.?ici|jusqu.?a\s+present|precedemment|antes|anteriormente|hasta\s+ahora|ate\s+agora|ate\s+aqui|prima|finora|fino\s+ad\s+ora|in\s+precedenza|wczesniej|dotad|dotychczas|eerder|tot\s+nu\s+toe|hiervoor|tidigare|hittills|hittil|tidligere|sebelumnya)\b)"
        ),
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks for the assistant's instructions (in another language)",
        words(
            "muestra muestrame mostra mostrame mostre revela revele revelame dime dimmi dis affiche montre zeig zeige gib nenne verrate toon geef laat imprime escribe scrivi ecris schreib repite ripeti repete wiederhole herhaal repita copia kopiere pokaz podaj tunjukkan"
        ),
        _re(
            r"\b(?:muestra(?:me)?|mostra(?:-?me)?|mostre(?:-?me)?|revela(?:-?me)?|revele(?:-?me)?|dime|dimmi|dis-moi|dites-moi|affiche|montre(?:-moi)?|zeig(?:e)?(?:\s+mir)?|gib\s+mir|nenne|verrate|toon|geef|laat\s+zien|imprime|escribe|scrivi|ecris|schreib|repite|ripeti|repete|wiederhole|herhaal|repita|copia|kopiere|pokaz|podaj|tunjukkan)\b"
            r".{0,30}?\b(?:(?:tus|tuas|suas|sus|tes|vos|votre|ton|tua|tue|deine|ihre|dein|je|jouw|uw|swoje|twoje)\s+(?:\w+\s+)?(?:instrucciones|instrucoes|instructions|istruzioni|anweisungen|instructies|consignes|regras|reglas|regole|regles|directrices|diretrizes|directives|prompt|instrukcje|instruksi)"
            r"|(?:instrucciones|instrucoes|instructions|istruzioni|anweisungen|instructies|consignes|regras|reglas|regole|regles|directrices|diretrizes|prompt|instrukcje|instruksi)\s+(?:iniciales|iniciais|initiales|iniziali|originales|originais|originali|ursprunglichen|ocultas|ocultos|secretas|secretes|nascoste|segrete|versteckten|geheimen|verborgen|geheime|internas|internes|interne|del\s+sistema|do\s+sistema|de\s+sistema|di\s+sistema|du\s+systeme|des\s+systems|van\s+het\s+systeem))\b"
        ),
    ),
    Signal(
        "instruction_override",
        0.9,
        "asks to ignore earlier instructions (in another script)",
        ALWAYS,
        _re(
            # Russian, Ukrainian
            r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте|не\s+обращай\s+внимания\s+на|отбрось|отбросьте|пренебреги|обойди|не\s+следуй|перестань\s+следовать|ігноруй|забудь)\s*.{0,30}?"
            r"(?:инструкци|указани|правил|промпт|ограничени|установк|директив|фильтр|інструкці|вказівк|правил|обмежен)"
            # Chinese, Japanese, Korean
            r"|(?:忽略|无视|無視|忽视|忘记|忘掉|不要理会|跳过|覆盖|绕过|繞過).{0,12}?(?:指令|指示|说明|說明|规则|規則|提示|命令|设定|設定|要求|限制|约束|約束|准则|準則|政策|过滤|過濾|审查|審查|原则|原則)"
            r"|(?:之前|以前|前面|先前|此前|上面|刚才|剛才)[^。！？\n]{0,10}?(?:告诉|告訴|对你说|對你說|给你|給你|设定|設定|说|說|教)[^。！？\n]{0,6}?(?:一切|所有|全部|内容|內容|话|話|东西|東西|指令|规则|規則)[^。！？\n]{0,8}?(?:不算数|不算數|不算|作废|作廢|无效|無效|不再有效|忘掉|忘记|忘記|忽略|取消)"
            r"|(?:指示|命令|ルール|設定|プロンプト|制限|ガイドライン|規則|制約).{0,10}?(?:無視|忘れ)"
            r"|(?:지시|명령|규칙|프롬프트|지침|제한|가이드라인|규정).{0,10}?(?:무시|잊어)"
            # Arabic, Hebrew, Greek, Turkish, Hindi
            r"|(?:تجاهل|انسَ|انس|تجاوز|تخطى|تخطَّ|اكسر).{0,30}?(?:التعليمات|الأوامر|القواعد|القيود|الإرشادات|التوجيهات|تعليماتك|القوانين)"
            r"|(?:התעלם|התעלמי|שכח|שכחי).{0,30}?(?:ההוראות|הכללים|ההנחיות|ההגבלות)"
            r"|(?:αγνόησε|αγνοήστε|ξέχασε|ξεχάστε).{0,30}?(?:οδηγίες|κανόνες|περιορισμούς)"
            r"|(?:talimatları|kuralları|yönergeleri|kısıtlamaları).{0,30}?(?:yok\s+say|unut|görmezden\s+gel)"
            r"|(?:निर्देशों|निर्देश|नियमों|प्रतिबंधों|दिशानिर्देशों).{0,30}?(?:अनदेखा|भूल|नज़रअंदाज़)"
        ),
        view="unicode",
    ),
    Signal(
        "prompt_extraction",
        0.85,
        "asks for the system prompt (in another language)",
        words("prompt systemprompt system sistema systeme", nonascii=True),
        _re(
            r"(?:prompt|mensaje|mensagem|messaggio|message|nachricht|anweisungen|instrucciones|instruções|istruzioni|instructions)\s+(?:del\s+|do\s+|di\s+|du\s+|des\s+|de\s+)?(?:sistema|système|systeme|system|sistem)"
            r"|system-?prompt|systemprompt|(?:系统|系統|システム)(?:提示|プロンプト|指令|消息|メッセージ)|системн\w+\s+(?:промпт|инструкци|сообщени)|시스템\s*(?:프롬프트|메시지)"
            r"|सिस्टम\s*प्रॉम्प्ट|(?:موجه|رسالة|تعليمات)\s+النظام"
        ),
        view="any",
    ),
    Signal(
        "prompt_extraction",
        0.75,
        "asks for the assistant's instructions (in another script)",
        Prefilter(nonascii=True),
        _re(
            r"(?:покажи|выведи|раскрой|повтори|напиши|перечисли|скажи)\s.{0,30}?(?:сво|тво)\w*\s+(?:инструкци|правил|промпт|настройк|указани)"
            r"|(?:显示|告诉我|輸出|输出|打印|重复|重複|透露|给我看|泄露|洩露).{0,8}?你的.{0,6}?(?:指令|提示词|提示|规则|規則|设定|設定|说明|說明)"
            r"|あなたの(?:指示|プロンプト|ルール|設定|命令).{0,12}?(?:表示|教えて|見せて|出力|繰り返)"
            r"|(?:너의|당신의|네)\s*(?:지시|프롬프트|규칙|설정|지침).{0,12}?(?:보여|알려|출력|말해)"
            r"|(?:اكشف|أظهر|اعرض|اطبع|أخبرني).{0,20}?(?:تعليماتك|التعليمات|قواعدك|إعداداتك)"
            r"|(?:अपने|अपना|अपनी|आपके|आपका|तुम्हारे)\s*(?:निर्देश|नियम|प्रॉम्प्ट).{0,20}?(?:दिखा|बता|लिख)"
        ),
        view="unicode",
    ),
    Signal(
        "role_hijack",
        0.5,
        "redefines who the assistant is (in another language)",
        words("eres voce sei tu du", nonascii=True),
        _re(
            r"(?:你现在是|你現在是|从现在开始你|從現在開始你|今からあなたは|あなたは今|너는\s*이제|지금부터\s*너는|теперь\s+ты|с\s+этого\s+момента\s+ты"
            r"|ahora\s+eres|a\s+partir\s+de\s+ahora\s+eres|agora\s+você\s+é|ora\s+sei|d[ée]sormais,?\s+tu\s+es|tu\s+es\s+maintenant|du\s+bist\s+(?:jetzt|nun|ab\s+sofort))"
        ),
        view="any",
    ),
    Signal(
        "restrictions_removed",
        0.55,
        "says the assistant has no restrictions (in another language)",
        words("sin sem senza sans ohne aucune aucun keine keinerlei ninguna ningun nessuna nenhuma", nonascii=True),
        _re(
            r"(?:sin|sem|senza|sans|ohne|без|没有|沒有|无|無|제한\s*없)\s*(?:ninguna\s+|nenhuma\s+|alcuna\s+|aucune\s+|jegliche\s+|каких-либо\s+|任何)?"
            r"(?:restricci|restriç|restrizion|restriction|einschränkung|ограничени|限制|制限|censura|censure|zensur|цензур|审查|規制|filtros|filtri|filtres|filter\b|фильтр|过滤)"
            r"|(?:你|您)[^。！？\n，,]{0,4}?(?:没有|沒有|不受|不再有)(?:任何)?(?:规则|規則|约束|約束|准则|準則|底线|底線|限制)"
            r"|\b(?:plus\s+aucune?|aucune?|keine|keinerlei|ninguna|ningún|ningun|nessuna|nenhuma|никаких)\s+(?:\w+\s+)?(?:restrictions?|limites?|règles?|regles?|einschränkungen?|regeln|restricciones|restricción|reglas|limitaciones|restrizioni|regole|limiti|restrições|regras|ограничений|правил)\b"
        ),
        view="any",
    ),
)

INDIRECT_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "indirect_instruction",
        0.75,
        "tells the assistant how to shape its answer",
        words("your ur assistant's ai's model's assistant ai model"),
        _re(rf"\b(?:your|ur|the\s+assistant'?s|the\s+ai'?s|the\s+model'?s)\s+(?:\w+\s+){{0,2}}(?:{RESPONSES})s?\b"),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.45,
        "tells the assistant what to put in its code",
        words("your ur"),
        _re(rf"\b(?:your|ur)\s+(?:\w+\s+){{0,2}}(?:{CODE_OUTPUTS})s?\b"),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.6,
        "contains an imperative sentence",
        ALWAYS,
        _re(
            rf"(?:^|[.!?;:\n]\s*|\(\s*)(?:{LEAD_INS})(?:don'?t\s+forget\s+to\s+|remember\s+to\s+|make\s+sure\s+(?:to\s+)?|be\s+sure\s+to\s+|take\s+a\s+moment\s+to\s+|feel\s+free\s+to\s+|don'?t\s+hesitate\s+to\s+)?(?:{IMPERATIVES})\b(?!\s*(?:is|was|are|were|has|had)\b|\s*:)"
        ),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.55,
        "asks the reader a question or for help",
        ALWAYS,
        _re(
            r"(?:^|[.!?\n]\s*)(?:(?:so|and|but|also|now|then|ok|okay|hey)[\s,]+)?(?:how|what|which|who|whom|whose|where|when|why|is|are|was|were|can|could|would|will|should|shall|do|does|did|may|might)\b[^.!?\n]{3,300}\?"
            r"|\b(?:i\s+(?:want|need|would\s+like)\s+(?:you|the\s+assistant|the\s+ai)\s+to|could\s+you|can\s+you|would\s+you|will\s+you|you\s+(?:must|should|need\s+to|have\s+to|are\s+required\s+to))\b"
        ),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.8,
        "addresses the AI reading the content",
        ALWAYS,
        _re(
            r"\b(?:note|message|instructions?|attention|reminder|request|important)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?(?:ai|assistant|model|agent|llm|language\s+model|chatbot|bot|gpt)s?\b"
            rf"|(?:^|[.!?\n]\s*)(?:dear\s+|hey\s+|hi\s+|attention\s+)?(?:ai|assistant|agent|llm|language\s+model|chatbot|{AI_NAMES})\s*[,:]\s"
            r"|\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|assistant|language\s+model|llm|chatbot|bot|agent)\b"
        ),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.35,
        "uses urgency markers typical of hidden instructions",
        words("important urgent attention notice warning note instruction action"),
        _re(r"(?:^|\s)(?:important|urgent|attention|notice|warning|note|instruction|action\s+required)\s*[:!]"),
        modes=("indirect",),
    ),
    Signal(
        "indirect_instruction",
        0.5,
        "embeds code that opens shells, sockets or network calls",
        substrings(
            "subprocess",
            "os.",
            "socket",
            "pty.",
            "eval",
            "exec",
            "requests.",
            "urllib",
            "fetch",
            "xmlhttprequest",
            "powershell",
            "invoke-webrequest",
            "curl",
            "wget",
            "nc -e",
            "/bin/",
            "rm -rf",
            "chmod",
            "crontab",
            "keylog",
            "win32clipboard",
            "pynput",
        ),
        _re(
            r"\b(?:subprocess\.\w+|os\.(?:system|popen|fork|dup2|exec\w*)|socket\.socket|pty\.spawn|eval\s*\(|exec\s*\(|requests\.(?:get|post|put)|urllib\.request|"
            r"fetch\s*\(\s*['\"]https?|xmlhttprequest|powershell\s+-|invoke-webrequest|curl\s+[^|\n]*\|\s*(?:ba|z)?sh|wget\s+[^|\n]*\|\s*(?:ba|z)?sh|nc\s+-e|/bin/(?:ba)?sh|rm\s+-rf\s+/|"
            r"chmod\s+\+?777|crontab|\bkeylog|win32clipboard|pynput)"
        ),
        modes=("indirect",),
    ),
)

ALL_SIGNALS = SIGNALS + INDIRECT_SIGNALS
