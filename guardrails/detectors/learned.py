"""A learned prompt-injection scorer: logistic regression over hashed character and word n-grams.

Features: the text's normalised views (normalize.views: the ASCII skeleton with look-alikes,
invisible characters and letter spacing undone, the Unicode view, leetspeak spelled out, decoded
base64/hex/URL blobs), lower-cased and joined; of that, character 3-, 4- and 5-grams and word 1-
and 2-grams, each hashed (a polynomial hash over code points, computed with numpy over the whole
text at once) into 2**18 buckets; a feature is present or not, and the vector is L2-normalised.
One weight vector per mode (direct: the user's own prompt; indirect: third-party content), read
from `injection_model.npz` beside this module: plain float arrays, loaded without pickle.

Training (guardrails/training/train_injection.py) uses the development data in ../shared/datasets/,
the templated text of guardrails/training/corpus.py and the free-form text of
guardrails/training/freeform.py (five batches; both written for it, in English and 26 other
languages, with the normaliser run in reverse for obfuscated copies; guardrails/training/DATA.md is
the data card).
Each mode's threshold is calibrated there on out-of-fold scores fused with the rules (`fuse`:
the surer of the two, or their noisy-OR when both are at least AGREE); `calibrated(p, mode)`
maps the probability so that the threshold reads 0.5.

Tried and not kept (2026-12-07, docs/BENCHMARKS.md): a static word-embedding model whose weights
ship inside its wheel (wordllama 0.4.0.post1, 256 dimensions over Llama 2's tokenizer), mean-pooled
(also with max pooling, and with adjacent-token products), with a logistic or a small MLP head, and
averaged with this model: on sources left out of training it caught fewer attacks than the n-grams
at the same false-positive rate, alone and fused, so it is not worth a 19 MB dependency.
Also tried (2026-12-08, docs/BENCHMARKS.md): word classes from a hand-written multilingual lexicon
(override verbs, "previous", rules, secrets, reveal verbs, personas, harms, wrappers, each word also
counted as its class, with class 1- to 3-grams): on sources left out of training they lifted the
model alone from 0.55 to 0.63-0.71 and the fusion by 0.7 to 4 points at the same false-positive
rate, but the shipped model then flagged benign test prompts that only mention an attack
("Translate into Spanish: 'Attackers may try to make the assistant ignore its instructions.'"): the
classes make a mention read as a use, and the guardrails tests hold those prompts to no finding;
word skip-bigrams and trigrams (no gain); a second, stacked logistic model over this model's score,
the rules' signal families and a few dozen lexicon flags (fewer attacks caught at the same
false-positive rate); and letting a confident benign score veto a rule's hit (more false positives
on sources left out). And (session 29) NB-scaled features, each bucket times its log-count ratio
(fewer attacks caught at the same false-positive rate).

What it cannot catch: attacks whose words and character sequences look like nothing in its
training data (a new language, a new persona with ordinary words, an instruction phrased as plain
benign prose, which is all an indirect attack can be); meaning it only sees as n-grams, so a
long benign text holding a short attack is diluted, and a benign text full of jailbreak vocabulary
(a role-play request that says "stay in character", an essay about jailbreaks) scores high;
and harmful requests in a wrapper (a role, a story, a table) are barely a family to it. On a source
it never saw (leave-one-source-out, docs/BENCHMARKS.md, issue 16, session 29) it catches about half
of the direct attacks alone (0.49) at 0.5 % false positives; fused with the rules, 0.76 of them (the
rules alone 0.64) at 2.4 % (the rules alone 1.9 %, since "stay in character" counts only beside
another signal); of a batch of attacks written in a new style, 0.68, 0.61, 0.40, 0.38 and 0.33 (the
five free-form batches). In indirect mode it adds nothing the rules do not already flag. A second
opinion beside the rules, not a replacement, and off in the default policy.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).with_name("injection_model.npz")
BITS = 18
BUCKETS = 1 << BITS
CHAR_NGRAMS = (3, 4, 5)
MAX_CHARS = 12_000  # a longer text is scored on its first and last 6,000 characters
_PRIME = np.uint32(16777619)
_MIX = np.uint32(0x9E3779B1)
_WORD = re.compile(r"\w+")


def _mix(hashes: np.ndarray, salt: int) -> np.ndarray:
    mixed = (hashes ^ np.uint32(salt)) * _MIX
    return (mixed ^ (mixed >> np.uint32(15))) & np.uint32(BUCKETS - 1)


def features(texts: list[str]) -> np.ndarray:
    """The sorted, unique feature indices of `texts` (the views of one text)."""
    text = "\n".join(texts).lower()
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS // 2] + "\n" + text[-MAX_CHARS // 2 :]
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    parts: list[np.ndarray] = []
    with np.errstate(over="ignore"):
        for n in CHAR_NGRAMS:
            if len(codes) < n:
                continue
            count = len(codes) - n + 1
            hashes = codes[:count].copy()
            for k in range(1, n):
                hashes = hashes * _PRIME + codes[k : k + count]
            parts.append(_mix(hashes, n))
        words = _WORD.findall(text)
        if words:
            word_hashes = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint32, count=len(words))
            parts.append(_mix(word_hashes, 101))
            if len(words) > 1:
                parts.append(_mix(word_hashes[:-1] * _PRIME + word_hashes[1:], 102))
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(parts)).astype(np.int64)


@dataclass(frozen=True)
class Model:
    weights: dict[str, np.ndarray]  # mode -> float32[BUCKETS]
    bias: dict[str, float]
    threshold: dict[str, float]  # mode -> probability at which the fused score reaches 0.5

    def probability(self, indices: np.ndarray, mode: str) -> float:
        if len(indices) == 0:
            return 0.0
        logit = float(self.weights[mode][indices].sum()) / math.sqrt(len(indices)) + self.bias[mode]
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))

    def calibrated(self, probability: float, mode: str) -> float:
        """`probability` moved on the logit scale so that the mode's threshold reads 0.5."""
        return shift(probability, self.threshold[mode])


def shift(probability: float, threshold: float) -> float:
    p = min(max(probability, 1e-9), 1 - 1e-9)
    t = min(max(threshold, 1e-9), 1 - 1e-9)
    logit = math.log(p / (1 - p)) - math.log(t / (1 - t))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


# Two signals that are each at least this sure add up (noisy-OR); otherwise the surer one decides.
# A plain noisy-OR let the model's everyday 0.1-0.3 on benign text push the rules' deliberately
# sub-threshold weights (0.4-0.45: "an AI with no rules" in an essay question) over 0.5.
AGREE = 0.4


def fuse(rule_score: float, learned_score: float) -> float:
    """The detector's score from the rules' score and the model's calibrated one."""
    if min(rule_score, learned_score) >= AGREE:
        return round(1 - (1 - rule_score) * (1 - learned_score), 4)
    return round(max(rule_score, learned_score), 4)


def save(path: Path, model: Model) -> None:
    arrays: dict[str, np.ndarray] = {}
    for mode, weights in model.weights.items():
        arrays[f"weights_{mode}"] = weights.astype(np.float16)
        arrays[f"bias_{mode}"] = np.array([model.bias[mode]], dtype=np.float64)
        arrays[f"threshold_{mode}"] = np.array([model.threshold[mode]], dtype=np.float64)
    arrays["bits"] = np.array([BITS])
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load(path: Path = MODEL_PATH) -> Model:
    with np.load(path, allow_pickle=False) as data:
        if int(data["bits"][0]) != BITS:
            raise ValueError(f"{path} was trained with {int(data['bits'][0])} hash bits, the scorer uses {BITS}")
        modes = ("direct", "indirect")
        return Model(
            weights={mode: data[f"weights_{mode}"].astype(np.float32) for mode in modes},
            bias={mode: float(data[f"bias_{mode}"][0]) for mode in modes},
            threshold={mode: float(data[f"threshold_{mode}"][0]) for mode in modes},
        )


@lru_cache(maxsize=1)
def shipped() -> Model | None:
    """The committed model, or None when its file is missing (the rules then work alone)."""
    if not MODEL_PATH.exists():
        return None
    return load(MODEL_PATH)
