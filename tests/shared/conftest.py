"""The shared tier's tests: one real redis-server per test, and fresh simulators."""

from collections.abc import Iterator

import pytest

from tests.support.redis import RedisServer, running_redis
from tests.support.simulators import Simulators


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def simulators() -> Simulators:
    return Simulators.fresh()
