"""Fixtures for any test suite: `pytest_plugins = ["tests.librechat_double.pytest_plugin"]`.

One double serves the whole session and is reset (state, mode, config) for each test, which
keeps a test's setup to a few milliseconds instead of a server start and stop.

- `librechat_double`: LibreChat's defaults, except no 1 s sleep on duplicate registrations.
- `make_librechat_double(**config)`: the shared double with these DoubleConfig values; a
  second call in the same test starts an extra double, stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .config import DoubleConfig
from .server import LibreChatDouble

MakeDouble = Callable[..., LibreChatDouble]


@pytest.fixture(scope="session")
def librechat_double_server() -> Iterator[LibreChatDouble]:
    with LibreChatDouble() as double:
        yield double


@pytest.fixture
def make_librechat_double(librechat_double_server: LibreChatDouble) -> Iterator[MakeDouble]:
    handed_out: list[LibreChatDouble] = []

    def make(**config: Any) -> LibreChatDouble:
        if handed_out:
            double = LibreChatDouble(DoubleConfig(**config)).start()
        else:
            double = librechat_double_server.reset(DoubleConfig(**config))
        handed_out.append(double)
        return double

    yield make
    for double in handed_out[1:]:
        double.stop()


@pytest.fixture
def librechat_double(make_librechat_double: MakeDouble) -> LibreChatDouble:
    return make_librechat_double(duplicate_delay_s=0.0)
