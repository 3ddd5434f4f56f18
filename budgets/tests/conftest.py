"""Fixtures budgets' tests borrow: the loopback webhook receiver of the tool tests, and the demo
eval suite with an in-process case runner of the evals tests."""

from agents.tests.test_tools import allow_loopback, receiver
from evals.tests.conftest import execute, suite

__all__ = ["allow_loopback", "execute", "receiver", "suite"]
