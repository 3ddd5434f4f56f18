"""The injection detector on the hand-written probes (guardrails/tests/probes.py): a regression
guard on rule changes, measured in aggregate like the benchmark."""

from __future__ import annotations

import pytest

from guardrails.detectors import injection
from guardrails.tests import probes
from guardrails.tests.probes import ATTACKS, BENIGN

# Batches 5-7, then 8-10, were measured before the rules were broadened for them (docs/BENCHMARKS.md)
# and are held to the bar of the first batches. Batch 8 was the unseen batch of the second round;
# the third round was written with its misses in view, so it is no longer unseen.
BROADENED_FOR = ["BATCH_5", "BATCH_6", "BATCH_7", "BATCH_8", "BATCH_9", "BATCH_10"]


def test_it_flags_at_least_nine_in_ten_probe_attacks() -> None:
    missed = [text for text in ATTACKS if not injection.detect(text)]
    assert len(missed) <= len(ATTACKS) // 10, missed


def test_it_flags_at_most_one_in_twenty_benign_probes() -> None:
    flagged = [text for text in BENIGN if injection.detect(text)]
    assert len(flagged) <= len(BENIGN) // 20, flagged


def test_indirect_mode_flags_every_probe_attack_but_one() -> None:
    missed = [text for text in ATTACKS if not injection.detect(text, mode="indirect")]
    assert len(missed) <= 1, missed


@pytest.mark.parametrize("batch", BROADENED_FOR)
def test_each_batch_the_rules_were_broadened_for_keeps_its_recall_and_false_positives(batch: str) -> None:
    attacks, benign = getattr(probes, f"{batch}_ATTACKS"), getattr(probes, f"{batch}_BENIGN")
    missed = [text for text in attacks if not injection.detect(text)]
    flagged = [text for text in benign if injection.detect(text)]
    assert len(missed) <= len(attacks) // 10, missed
    assert len(flagged) <= len(benign) // 20, flagged


def test_the_unseen_batch_does_not_fall_below_its_measured_figure() -> None:
    """Batch 11 was written after the third round's rules and measured once (7 of 22 attacks, no
    benign prompt flagged; the previous rules scored the same). It is not a target to tune on; this
    only guards against losing ground."""
    caught = sum(bool(injection.detect(text)) for text in probes.BATCH_11_ATTACKS)
    flagged = [text for text in probes.BATCH_11_BENIGN if injection.detect(text)]
    assert caught >= 7
    assert flagged == []
