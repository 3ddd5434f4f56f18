"""Guardrail detector quality and latency on the development data in ../shared/datasets/.

    python bench/guardrails.py [--datasets ../shared/datasets] [--iterations 2000]
    python bench/guardrails.py --verdicts record|check [--fixture bench/guardrails_verdicts.json.gz]

Prints:
- injection: per source and per scope, recall on attacks and false-positive rate on benign rows,
  with direct rows scanned in `direct` mode and indirect rows in `indirect` mode (the mode's
  default threshold), also split into even and odd rows: the rules were written looking at
  categories of the data, not rows, and the two halves should agree;
- PII: recall and precision per entity type, a found span counting when it overlaps a gold span
  of the same type (only the structured types the detector covers; names and addresses need NER);
  and recall per type on the hand-written set of unseen formats (guardrails/tests/data/
  pii_formats.json: international phone numbers, 2-series Mastercard, IBANs, IPv6) with the
  share of its look-alike negatives flagged;
- with --verdicts: instead of the tables, the verdict and findings of every development row and
  every text of this bench, through the default policy's four stages and each detector alone,
  recorded to a fixture (`record`) or compared with it row by row (`check`, exit status 1 and
  every difference printed when one differs): what a speed-up must leave unchanged;
- learned detector (guardrails/detectors/learned.py), fused with the rules: leave-one-source-out
  (the model retrained on every source but one, its threshold calibrated on that training set's
  own out-of-fold scores, then the left-out source scored), pooled per scope over every source,
  over the NotInject sets, over the written sources and over the other public ones; a held-back
  split of the written training text (whole template families and seed lines left out of
  training); the shipped model in-sample beside them; recall and FPR per source with a 95 %
  Wilson interval, for the rules alone, the model alone and the fusion; and the hand-written
  probes (guardrails/tests/probes.py, per batch) and this bench's benign tool results, which the
  model never trains on, scored by the shipped model. `--no-loso` skips the retraining (about
  five minutes of CPU: each left-out source costs four fits);
- latency: p50 / p99 of a 2 KB text through the default policy's input stage (injection,
  secrets, PII, length), for ordinary prose and for PII-dense text, and of a 2 KB tool result
  through the default tool_result stage; then the same with the learned model fused into the
  policy's injection rules; each run checks a different text (the seed repeated
  from another offset), so nothing a detector keeps from one call serves the next.

Pure Python, no database: the detectors and the policy evaluator are offline and pure.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardrails.checks import DEFAULT_RULES, evaluate
from guardrails.detectors import injection, learned, pii, secrets
from guardrails.tests import probes
from guardrails.tests.probes import PHONE_NUMBERS, PII_NEAR_MISSES
from guardrails.training import train_injection
from guardrails.training.corpus import held_back

STRUCTURED = pii.ENTITIES

# Benign third-party content of the kinds tools return (written for this benchmark, not drawn from
# the datasets, which hold no benign indirect rows): how often indirect mode flags or would block it.
BENIGN_TOOL_RESULTS = [
    '{"order": "A-1001", "status": "shipped", "carrier": "DHL", "eta": "2026-03-04"}',
    '{"results": [{"title": "How to reset your password", "url": "https://help.example.com/reset"}]}',
    "Hi Sam, thanks for the update. The invoice is attached; let me know if anything is missing. Best, Ana",
    "Please find attached the signed contract. Could you confirm receipt by Friday?",
    "The city council approved the new budget on Tuesday, allocating 12% more to public transport.",
    "Step 1: Unplug the router. Step 2: Wait 30 seconds. Step 3: Plug it back in and wait for the lights.",
    "Product: Trail runner 2. Price: 89 EUR. Sizes: 38-46. Free returns within 30 days.",
    "Error 404: the page you requested could not be found. Return to the home page.",
    "Meeting notes: we agreed to ship v2 next sprint. Action items: Ana writes docs, Ben fixes the login bug.",
    "FAQ: How do I change my email? Go to Settings, then Account, then Email.",
    "To install, run pip install requests and then import it in your script.",
    "Weather: 18°C, light rain. Wind 12 km/h from the west. Sunrise 06:41.",
    "Dear customer, your subscription renews on 1 May. To cancel, visit your account page.",
    "The function returns None if the key is missing; otherwise it returns the value.",
    "Reviews: 4.5/5. 'Great shoes, very comfortable.' 'Runs small, order a size up.'",
    "Unsubscribe from these emails at any time by clicking the link below.",
    "Note: the API rate limit is 100 requests per minute per key.",
    "Summary of the paper: the authors propose a new segmentation method that beats the baseline by 3 points.",
    "Ticket #4821 (closed): customer could not log in; fixed by resetting the session cache.",
    "Shipping address updated to 12 Rue de Rivoli, Paris. Delivery expected Thursday.",
]


def pct(hits: int, total: int) -> str:
    return f"{100 * hits / total:5.1f}% ({hits}/{total})" if total else "    n/a"


def bench_injection(rows: list[dict[str, Any]]) -> None:
    cells: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for index, row in enumerate(rows):
        flagged = bool(injection.detect(row["text"], mode=row["scope"]))
        source = row["source"].split(":")[0]
        for key in ((source, row["scope"], row["label"]), ("ALL", row["scope"], row["label"])):
            cell = cells[key]
            cell[0] += flagged
            cell[1] += 1
            half = 2 if index % 2 == 0 else 4
            cell[half] += flagged
            cell[half + 1] += 1
    print("\n## Injection (direct rows in direct mode, indirect rows in indirect mode)\n")
    print(f"| {'source':42} | scope    | measure | {'all rows':17} | {'even rows':17} | {'odd rows':17} |")
    print(f"|{'-' * 44}|----------|---------|{'-' * 19}|{'-' * 19}|{'-' * 19}|")
    for (source, scope, label), cell in sorted(cells.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0])):
        measure = "recall" if label == 1 else "FPR"
        print(
            f"| {source:42} | {scope:8} | {measure:7} | {pct(cell[0], cell[1]):17} | "
            f"{pct(cell[2], cell[3]):17} | {pct(cell[4], cell[5]):17} |"
        )


def bench_indirect_thresholds(rows: list[dict[str, Any]]) -> None:
    """The default policy blocks a tool result at score 0.85 and flags it at 0.5."""
    attacks = [row["text"] for row in rows if row["scope"] == "indirect" and row["label"] == 1]
    print("\n## Indirect mode at the default policy's two thresholds\n")
    print("| content                                   | flagged (score >= 0.5) | blocked (score >= 0.85) |")
    print("|-------------------------------------------|------------------------|-------------------------|")
    for label, texts in (
        ("BIPIA attacks (dataset)", attacks),
        ("benign tool results (bench/guardrails.py)", BENIGN_TOOL_RESULTS),
    ):
        flagged = sum(bool(injection.detect(t, mode="indirect", threshold=0.5)) for t in texts)
        blocked = sum(bool(injection.detect(t, mode="indirect", threshold=0.85)) for t in texts)
        print(f"| {label:41} | {pct(flagged, len(texts)):22} | {pct(blocked, len(texts)):23} |")


def bench_pii(rows: list[dict[str, Any]]) -> None:
    tp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    for row in rows:
        found = pii.detect(row["text"])
        gold = [s for s in row["spans"] if s["type"] in STRUCTURED]
        for span in gold:
            hit = any(f.type == span["type"] and f.start < span["end"] and span["start"] < f.end for f in found)
            (tp if hit else fn)[span["type"]] += 1
        for f in found:
            if not any(f.type == s["type"] and f.start < s["end"] and s["start"] < f.end for s in gold):
                fp[f.type] += 1
    print("\n## PII (structured entity types)\n")
    print("| entity        | recall            | precision         |")
    print("|---------------|-------------------|-------------------|")
    for entity in STRUCTURED:
        recall, precision = pct(tp[entity], tp[entity] + fn[entity]), pct(tp[entity], tp[entity] + fp[entity])
        print(f"| {entity:13} | {recall:17} | {precision:17} |")
    all_tp, all_fn, all_fp = sum(tp.values()), sum(fn.values()), sum(fp.values())
    print(f"| {'all':13} | {pct(all_tp, all_tp + all_fn):17} | {pct(all_tp, all_tp + all_fp):17} |")
    near = [text for text in PII_NEAR_MISSES if pii.detect(text)]
    phones = [text for text in PHONE_NUMBERS if any(f.type == "PHONE_NUMBER" for f in pii.detect(text))]
    print(
        f"\nNear misses (timestamps, dates, UUIDs, order numbers, versions, decimals; guardrails/tests/probes.py): "
        f"{len(near)} / {len(PII_NEAR_MISSES)} found as PII; real phone numbers next to them: "
        f"{len(phones)} / {len(PHONE_NUMBERS)} found."
    )
    for text in near:
        print(f"  false positive: {text!r}")
    bench_pii_formats()


PII_FORMATS = Path(__file__).resolve().parent.parent / "guardrails" / "tests" / "data" / "pii_formats.json"


def bench_pii_formats() -> None:
    """Recall per type on the hand-written set of unseen formats (a value counts when one finding
    of its type covers it whole), and how many of its look-alike negatives are flagged."""
    data = json.loads(PII_FORMATS.read_text())
    totals: dict[str, int] = defaultdict(int)
    found: dict[str, int] = defaultdict(int)
    for row in data["positives"]:
        start = row["text"].index(row["value"])
        end = start + len(row["value"])
        totals[row["type"]] += 1
        if any(f.type == row["type"] and f.start <= start and end <= f.end for f in pii.detect(row["text"])):
            found[row["type"]] += 1
    print("\n## PII in unseen formats (guardrails/tests/data/pii_formats.json, hand-written)\n")
    print("| entity        | recall            | 95 % interval   |")
    print("|---------------|-------------------|-----------------|")
    for entity in sorted(totals):
        low, high = wilson(found[entity], totals[entity])
        print(f"| {entity:13} | {pct(found[entity], totals[entity]):17} | {low:.3f} to {high:.3f}  |")
    flagged = [text for text in data["negatives"] if pii.detect(text)]
    print(f"\nLook-alike negatives flagged: {len(flagged)} / {len(data['negatives'])}")
    for text in flagged:
        print(f"  false positive: {text!r}")


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if not total:
        return 0.0, 1.0
    phat = hits / total
    centre = (phat + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(phat * (1 - phat) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(hits: int, total: int) -> str:
    if not total:
        return "n/a"
    low, high = wilson(hits, total)
    return f"{hits / total:.3f} [{low:.2f}, {high:.2f}]"


def _rule(row: dict[str, Any], mode: str) -> float:
    """The rules' score of a row in a mode, computed once per row."""
    key = f"rule_{mode}"
    if key not in row:
        row[key] = injection.rule_score(row["text"], mode=mode)  # type: ignore[arg-type]
    return float(row[key])


def _scored(
    rows: list[dict[str, Any]], weights: np.ndarray, bias: float, mode: str, threshold: float
) -> tuple[list[bool], list[bool], list[bool]]:
    """Per row: flagged by the rules alone, by the model alone (probability >= `threshold`), by
    their fusion (learned.fuse of the rules' score and the calibrated probability, >= 0.5)."""
    rules, alone, fused = [], [], []
    for row in rows:
        rule = _rule(row, mode)
        probability = train_injection.probability(weights, bias, row["features"])
        rules.append(rule >= 0.5)
        alone.append(probability >= threshold)
        fused.append(train_injection.fused(probability, rule, threshold) >= 0.5)
    return rules, alone, fused


CALIBRATION_FOLDS = 3
WRITTEN_SOURCES = ("written/", "freeform")


def _pool(source: str) -> str:
    """Which pooled line a source adds to: the NotInject sets (benign prompts full of trigger
    words, the issue's false-positive bar), the text written for training, or the other public
    development sources."""
    if source.startswith("NotInject"):
        return "NotInject"
    return "written" if source.startswith(WRITTEN_SOURCES) else "public"


def _trained_without(train: list[dict[str, Any]], mode: str) -> tuple[np.ndarray, float, float]:
    """Weights, bias and threshold of a model trained on `train` only: the threshold is calibrated
    as the shipped one is (train_injection.calibrate), on out-of-fold scores of `train`'s own rows,
    so nothing of the held-out rows decides it."""
    weights, bias = train_injection.fit(train)
    oof = train_injection.out_of_fold(train, CALIBRATION_FOLDS)
    threshold = train_injection.calibrate(oof, [_rule(r, mode) for r in train], [r["label"] for r in train])
    return weights, bias, threshold


def bench_learned(datasets: Path, *, loso: bool) -> None:
    model = learned.shipped()
    if model is None:
        print("\n## Learned detector: no model file (python -m guardrails.training.train_injection)")
        return
    rows = train_injection.load_rows(datasets)
    print("\n## Learned injection detector fused with the rules\n")
    print(
        f"Shipped thresholds: direct {model.threshold['direct']}, indirect {model.threshold['indirect']} "
        f"(probability at which the model alone reaches the detector's 0.5). Each row in its own scope's mode. "
        "Cells: rate [95 % Wilson interval] (recall on attacks, FPR on benign rows). 'Unseen': the model "
        f"retrained without the row's source and its threshold calibrated on that training set alone "
        f"({CALIBRATION_FOLDS}-fold out-of-fold scores, grouped by template family or seed line). The rules "
        "were written looking at the datasets' rows, so their column is in-sample for the datasets' sources.\n"
    )
    header = (
        "| source                                  | scope    | rows | measure | rules alone         "
        "| model, unseen       | fused, unseen       | fused, in-sample    | thr  |"
    )
    rule_line = f"|{'-' * 41}|----------|------|---------|{'-' * 21}|{'-' * 21}|{'-' * 21}|{'-' * 21}|------|"
    totals: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])

    def line(
        name: str,
        scope: str,
        label: int,
        unseen: list[dict[str, Any]],
        scores: Any,
        in_sample: list[bool],
        threshold: float,
        pool: str = "",
    ) -> None:
        rules, alone, fused = scores
        measure = "recall" if label else "FPR"
        n = len(unseen)
        print(
            f"| {name:39} | {scope:8} | {n:4} | {measure:7} | {rate(sum(rules), n):19} "
            f"| {rate(sum(alone), n):19} | {rate(sum(fused), n):19} | {rate(sum(in_sample), n):19} | {threshold:.2f} |"
        )
        for key in ((scope, "ALL", label), (scope, pool, label)) if pool else ((scope, "ALL", label),):
            total = totals[key]
            for index, value in enumerate((n, sum(rules), sum(alone), sum(fused), sum(in_sample))):
                total[index] += value

    def shipped_fused(held: list[dict[str, Any]], scope: str) -> list[bool]:
        return _scored(held, model.weights[scope], model.bias[scope], scope, model.threshold[scope])[2]

    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["source"], row["scope"], row["label"])].append(row)
    if loso:
        print(header)
        print(rule_line)
        for (source, scope, label), held in sorted(groups.items()):
            train = [r for r in rows if r["source"] != source and train_injection.in_mode(r, scope)]
            if not any(r["label"] == label for r in train):
                kind = "attacks" if label else "benign rows"
                print(f"| {source:39} | {scope:8} | {len(held):4} | (the only {kind} of the mode: not left out) |")
                continue
            weights, bias, threshold = _trained_without(train, scope)
            pool = _pool(source)
            line(
                source,
                scope,
                label,
                held,
                _scored(held, weights, bias, scope, threshold),
                shipped_fused(held, scope),
                threshold,
                pool,
            )
        print("\nPooled, each source unseen:\n")
        print(header)
        print(rule_line)
        for (scope, pool, label), (n, rules, alone, fused, in_sample) in sorted(totals.items()):
            measure = "recall" if label else "FPR"
            name = f"{pool}, each source unseen"
            print(
                f"| {name:39} | {scope:8} | {n:4} | {measure:7} | {rate(rules, n):19} "
                f"| {rate(alone, n):19} | {rate(fused, n):19} | {rate(in_sample, n):19} |  -   |"
            )
        totals.clear()
        print("\nHeld-back split of the written text (whole template families and seed lines out of training):\n")
        print(header)
        print(rule_line)
        for scope in ("direct", "indirect"):
            train = [
                r for r in rows if train_injection.in_mode(r, scope) and not (r["family"] and held_back(r["family"]))
            ]
            weights, bias, threshold = _trained_without(train, scope)
            for label in (1, 0):
                held = [
                    r
                    for r in rows
                    if r["scope"] == scope and r["label"] == label and r["family"] and held_back(r["family"])
                ]
                line(
                    f"written, held back ({len({r['family'] for r in held})} families)",
                    scope,
                    label,
                    held,
                    _scored(held, weights, bias, scope, threshold),
                    shipped_fused(held, scope),
                    threshold,
                )
    print("\nNever trained on (the shipped model; the rules were broadened for batches 1-10 of the probes):\n")
    print(header)
    print(rule_line)
    batches = [
        (f"probes.BATCH_{n}", getattr(probes, f"BATCH_{n}_ATTACKS"), getattr(probes, f"BATCH_{n}_BENIGN"))
        for n in range(5, 12)
    ]
    extra = [
        ("probes.ATTACKS (batches 1-4)", "direct", 1, probes.ATTACKS),
        ("probes.BENIGN (batches 1-4)", "direct", 0, probes.BENIGN),
    ]
    extra += [(f"{name} attacks", "direct", 1, attacks) for name, attacks, _ in batches]
    extra += [(f"{name} benign", "direct", 0, benign) for name, _, benign in batches]
    extra += [
        ("probes.ATTACKS in indirect mode", "indirect", 1, probes.ATTACKS),
        ("bench BENIGN_TOOL_RESULTS", "indirect", 0, BENIGN_TOOL_RESULTS),
    ]
    for name, scope, label, texts in extra:
        held = [{"text": t, "features": train_injection.text_features(t)} for t in texts]
        scores = _scored(held, model.weights[scope], model.bias[scope], scope, model.threshold[scope])
        line(name, scope, label, held, scores, scores[2], model.threshold[scope])


PROSE = (
    "Hello, I ordered a pair of running shoes last week and the parcel arrived today, but the left shoe is "
    "a size smaller than the right one. I have attached a photo of both labels. Could you tell me how to "
    "return them and whether the replacement can be shipped before the weekend? I would also like to know "
    "if the discount code from the newsletter still applies to the new order. Thanks a lot for your help. "
)
DENSE = (
    "Customer jane.roe@example.org (+44 20 7946 0958) paid with 4111 1111 1111 1111, refund to IBAN "
    "DE89 3704 0044 0532 0130 00; SSN 461-23-5896 on file, last login from 192.168.10.24. "
)
TOOL_RESULT = (
    "Order A-1001 shipped on 2026-03-02 via DHL, tracking 00340434161094042557. Items: running shoes (42), "
    "socks (3 pairs). The customer wrote: the left shoe is a size smaller than the right one, please advise. "
)


def _two_kb(seed: str, offset: int = 0) -> str:
    """2 KB of `seed` repeated, starting `offset` characters into it."""
    offset %= len(seed)
    return (seed * (2048 // len(seed) + 2))[offset : offset + 2048]


def _timed(iterations: int, call: Any) -> tuple[float, float, float, float]:
    """(wall p50, wall p99, CPU p50, CPU p99) in ms of `call(i)` for i in 0..iterations-1. Wall
    time includes waiting for a core when other processes load the machine; this thread's CPU time
    is what the check itself costs."""
    for index in range(50):
        call(index)
    wall, cpu = [], []
    for index in range(iterations):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call(index)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    wall.sort()
    cpu.sort()
    p99 = int(len(wall) * 0.99) - 1
    return statistics.median(wall), wall[p99], statistics.median(cpu), cpu[p99]


def bench_latency(iterations: int) -> None:
    load = os.getloadavg()[0]
    print(f"\n## Latency through the default policy ({iterations} runs each, after 50 warm-up runs)\n")
    print(f"{os.cpu_count()} cores, 1-minute load average {load:.2f} when the runs started.\n")
    print("| content (2 KB)                    | stage       | wall p50 ms | wall p99 ms | CPU p50 ms | CPU p99 ms |")
    print("|-----------------------------------|-------------|-------------|-------------|------------|------------|")
    # The default policy with the learned model fused into its injection rules (`"learned": true`).
    learned_rules = [
        {**rule, "parameters": {**rule["parameters"], "learned": True}} if rule["detector"] == "injection" else rule
        for rule in DEFAULT_RULES
    ]
    for label, seed, stage, rules in (
        ("ordinary prose", PROSE, "input", DEFAULT_RULES),
        ("PII-dense text", DENSE, "input", DEFAULT_RULES),
        ("tool result (indirect mode)", TOOL_RESULT, "tool_result", DEFAULT_RULES),
        ("prose, learned model fused", PROSE, "input", learned_rules),
        ("PII-dense, learned model fused", DENSE, "input", learned_rules),
        ("tool result, learned model fused", TOOL_RESULT, "tool_result", learned_rules),
    ):
        # Each run checks a different text (the seed from another offset), as a service sees:
        # nothing a detector remembers of the previous text can serve the next one.
        texts = [_two_kb(seed, offset) for offset in range(len(seed))]
        p50, p99, cpu50, cpu99 = _timed(
            iterations,
            lambda i, t=texts, s=stage, r=rules: evaluate(r, stage=s, content=t[i % len(t)]),
        )
        print(f"| {label:33} | {stage:11} | {p50:11.2f} | {p99:11.2f} | {cpu50:10.2f} | {cpu99:10.2f} |")


def _verdicts(text: str) -> dict[str, Any]:
    """Everything a check of `text` decides: per stage the action, the findings and the redaction,
    and each text detector's findings on its own (injection in both modes, PII, secrets)."""
    out: dict[str, Any] = {}
    for stage in ("input", "output", "tool_call", "tool_result"):
        result = evaluate(DEFAULT_RULES, stage=stage, content=text)
        out[stage] = {
            "action": result.action,
            "findings": [f.as_dict() for f in result.findings],
            "redacted": result.redacted_text,
        }
    out["injection:direct"] = [f.as_dict() for f in injection.detect(text, mode="direct")]
    out["injection:indirect"] = [f.as_dict() for f in injection.detect(text, mode="indirect")]
    out["pii"] = [f.as_dict() for f in pii.detect(text)]
    out["secrets"] = [f.as_dict() for f in secrets.detect(text)]
    return out


def verdict_texts(injection_rows: list[dict[str, Any]], pii_rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    texts = [(f"injection-dev:{i}", row["text"]) for i, row in enumerate(injection_rows)]
    texts += [(f"pii-dev:{i}", row["text"]) for i, row in enumerate(pii_rows)]
    texts += [(f"bench:tool_result:{i}", text) for i, text in enumerate(BENIGN_TOOL_RESULTS)]
    texts += [(f"bench:{name}", value) for name, value in (("prose", PROSE), ("dense", DENSE), ("tool", TOOL_RESULT))]
    texts += [
        (f"bench:2kb:{name}", _two_kb(value))
        for name, value in (("prose", PROSE), ("dense", DENSE), ("tool", TOOL_RESULT))
    ]
    return texts


def bench_verdicts(command: str, fixture: Path, texts: list[tuple[str, str]]) -> int:
    # The text's digest, not the text: the fixture holds no copy of the datasets.
    current = {key: {"sha256": hashlib.sha256(text.encode()).hexdigest(), **_verdicts(text)} for key, text in texts}
    by_key = dict(texts)
    if command == "record":
        with gzip.open(fixture, "wt", encoding="utf-8") as out:
            json.dump(current, out, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        print(f"recorded the verdicts of {len(current)} texts to {fixture}")
        return 0
    with gzip.open(fixture, "rt", encoding="utf-8") as recorded_file:
        recorded = json.load(recorded_file)
    differing = 0
    for key in sorted(set(recorded) | set(current)):
        before, after = recorded.get(key), current.get(key)
        if before == after:
            continue
        differing += 1
        print(f"\n### {key} differs")
        if before is None or after is None:
            print("  only in the", "fixture" if after is None else "current tree")
            continue
        print(f"  text: {by_key[key][:200]!r}")
        for part in sorted(set(before) | set(after)):
            if before.get(part) != after.get(part):
                print(
                    f"  {part}:\n    before {json.dumps(before.get(part), ensure_ascii=False)}"
                    f"\n    after  {json.dumps(after.get(part), ensure_ascii=False)}"
                )
    print(f"\n{len(current)} texts compared with {fixture}: {differing} differ")
    return 1 if differing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
    parser.add_argument("--datasets", type=Path, default=default)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--verdicts", choices=("record", "check"))
    parser.add_argument("--no-loso", action="store_true", help="skip the learned detector's retraining")
    parser.add_argument("--fixture", type=Path, default=Path(__file__).resolve().parent / "guardrails_verdicts.json.gz")
    args = parser.parse_args()
    injection_rows = [json.loads(line) for line in (args.datasets / "injection-dev.jsonl").open()]
    pii_rows = [json.loads(line) for line in (args.datasets / "pii-dev.jsonl").open()]
    if args.verdicts:
        sys.exit(bench_verdicts(args.verdicts, args.fixture, verdict_texts(injection_rows, pii_rows)))
    print(f"# Guardrails benchmark ({len(injection_rows)} injection rows, {len(pii_rows)} PII rows)")
    bench_injection(injection_rows)
    bench_indirect_thresholds(injection_rows)
    bench_learned(args.datasets, loso=not args.no_loso)
    bench_pii(pii_rows)
    bench_latency(args.iterations)


if __name__ == "__main__":
    main()
