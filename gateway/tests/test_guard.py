"""The stream guard (gateway.guard.StreamGuard): prose leaves as it arrives, word by word, while
anything that could still become a secret, a card or phone number or an address is held until it
is whole and masked."""

from __future__ import annotations

import pytest

from gateway.guard import WINDOW_CHARS, BlockedError, StreamGuard
from guardrails.checks import DEFAULT_RULES

OUTPUT_RULES = [dict(rule) for rule in DEFAULT_RULES if rule["stage"] == "output"]


def stream(text: str, size: int, guard: StreamGuard | None = None) -> list[str]:
    """What the client receives, delta by delta, for `text` sent in chunks of `size` characters."""
    guard = guard or StreamGuard(OUTPUT_RULES)
    sent = [guard.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return [*sent, guard.flush()]


def test_prose_leaves_word_by_word_not_after_a_window() -> None:
    guard = StreamGuard(OUTPUT_RULES)
    assert guard.feed("Your ord") == "Your "  # the word being written is held
    assert guard.feed("er ships") == "order "
    assert guard.feed(" today.\n") == "ships today.\n"
    assert guard.flush() == ""
    assert not guard.changed


def test_the_first_words_of_a_long_answer_are_not_held_back() -> None:
    text = "Thanks for waiting. " + "The parcel is on its way and should arrive soon. " * 5
    deltas = stream(text, 4)
    first = next(i for i, d in enumerate(deltas) if d)
    assert first * 4 < 12  # released within the first dozen characters, not after WINDOW_CHARS
    assert "".join(deltas) == text


@pytest.mark.parametrize("size", [1, 3, 7])
def test_a_card_number_split_across_chunks_never_leaves_in_part(size: int) -> None:
    text = "Charge it to 4111 1111 1111 1111 please, thanks."
    deltas = stream(text, size)
    joined = "".join(deltas)
    assert "4111" not in joined and "1111" not in joined
    assert joined.startswith("Charge it to ") and joined.endswith(" please, thanks.")
    assert all("1111" not in d for d in deltas)


@pytest.mark.parametrize("size", [2, 5])
def test_an_email_address_split_across_chunks_is_masked_whole(size: int) -> None:
    text = "Write to john.smith@example.com and we will answer today."
    joined = "".join(stream(text, size))
    assert "john" not in joined and "example.com" not in joined
    assert joined.endswith("and we will answer today.")


@pytest.mark.parametrize("size", [3, 8])
def test_a_secret_key_split_across_chunks_is_masked_before_any_of_it_leaves(size: int) -> None:
    key = "AKIA" + "IOSFODNN7EXAMPLE"
    text = f"Use the key {key} for the bucket, then rotate it."
    deltas = stream(text, size)
    assert all("AKIA" not in d and "EXAMPLE" not in d for d in deltas)
    assert "".join(deltas).endswith("for the bucket, then rotate it.")


def test_a_run_of_suspect_words_is_never_held_longer_than_the_window() -> None:
    guard = StreamGuard(OUTPUT_RULES)
    released = ""
    for _ in range(60):
        released += guard.feed("x=1 ")  # suspect words, one after another, forever
    assert len(guard.text) - guard.released <= WINDOW_CHARS
    assert released


def test_a_block_rule_ends_the_stream() -> None:
    rules = [{"stage": "output", "detector": "secrets", "parameters": {}, "action": "block"}]
    guard = StreamGuard(rules)

    def send_all() -> None:
        for chunk in ("The key is AKIA", "IOSFODNN7EXAMPLE ", "and more text follows here."):
            guard.feed(chunk)
        guard.flush()

    with pytest.raises(BlockedError):
        send_all()
    assert "AKIA" not in guard.sent
