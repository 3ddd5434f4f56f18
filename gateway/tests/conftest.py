"""The gateway tests' usual pair: a local fake OpenAI-compatible provider, and a tenant whose
`default` alias is pinned to a model there (gateway.tests.setup). A test file that needs another
fake (catalog.fake_upstream) or a tenant with more set up defines its own `fake` or `gw`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from catalog.fake_openai import FakeOpenAI
from gateway.tests.setup import Gateway, gateway_tenant


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeOpenAI]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def gw(fake: FakeOpenAI) -> Gateway:
    return gateway_tenant(fake.base_url)
