"""The injection detector on the hand-written probes (guardrails/tests/probes.py): a regression
guard on rule changes, measured in aggregate like the benchmark."""

from __future__ import annotations

from guardrails.detectors import injection
from guardrails.tests.probes import ATTACKS, BENIGN


def test_it_flags_at_least_nine_in_ten_probe_attacks() -> None:
    missed = [text for text in ATTACKS if not injection.detect(text)]
    assert len(missed) <= len(ATTACKS) // 10, missed


def test_it_flags_at_most_one_in_twenty_benign_probes() -> None:
    flagged = [text for text in BENIGN if injection.detect(text)]
    assert len(flagged) <= len(BENIGN) // 20, flagged


def test_indirect_mode_flags_every_probe_attack_but_one() -> None:
    missed = [text for text in ATTACKS if not injection.detect(text, mode="indirect")]
    assert len(missed) <= 1, missed
