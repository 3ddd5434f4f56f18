"""Settings read numbers and switches from the environment through env_int, env_float and
env_bool: an unset or empty variable takes the default, a bad value is refused naming it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_bool, env_float, env_int


def test_an_unset_or_empty_variable_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOC_TEST_NUMBER", raising=False)
    assert env_int("AOC_TEST_NUMBER", 7) == 7
    monkeypatch.setenv("AOC_TEST_NUMBER", " ")
    assert env_float("AOC_TEST_NUMBER", 2) == 2.0 and isinstance(env_float("AOC_TEST_NUMBER", 2), float)
    assert env_bool("AOC_TEST_NUMBER", True) is True


def test_it_reads_numbers_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOC_TEST_NUMBER", " 42 ")
    assert env_int("AOC_TEST_NUMBER", 7) == 42
    monkeypatch.setenv("AOC_TEST_NUMBER", "0.25")
    assert env_float("AOC_TEST_NUMBER", 1) == 0.25
    monkeypatch.setenv("AOC_TEST_NUMBER", "Off")
    assert env_bool("AOC_TEST_NUMBER", True) is False
    monkeypatch.setenv("AOC_TEST_NUMBER", "yes")
    assert env_bool("AOC_TEST_NUMBER", False) is True


@pytest.mark.parametrize(
    ("read", "value", "said"),
    [
        (lambda: env_int("AOC_TEST_NUMBER", 7), "12s", "AOC_TEST_NUMBER must be a whole number, not '12s'."),
        (lambda: env_int("AOC_TEST_NUMBER", 7), "1.5", "AOC_TEST_NUMBER must be a whole number, not '1.5'."),
        (lambda: env_float("AOC_TEST_NUMBER", 1), "fast", "AOC_TEST_NUMBER must be a number, not 'fast'."),
        (lambda: env_float("AOC_TEST_NUMBER", 1), "nan", "AOC_TEST_NUMBER must be a finite number, not 'nan'."),
        (lambda: env_bool("AOC_TEST_NUMBER", False), "ture", "AOC_TEST_NUMBER must be true or false"),
    ],
)
def test_it_refuses_a_bad_value_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, read: Callable[[], object], value: str, said: str
) -> None:
    monkeypatch.setenv("AOC_TEST_NUMBER", value)
    with pytest.raises(ImproperlyConfigured) as refused:
        read()
    assert str(refused.value).startswith(said)
