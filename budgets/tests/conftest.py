"""Fixtures budgets' tests borrow: the loopback webhook receiver of the tool tests."""

from agents.tests.test_tools import allow_loopback, receiver

__all__ = ["allow_loopback", "receiver"]
