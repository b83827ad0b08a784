from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest


class ConsoleOutput:
    """What the configured `console` handler (settings.LOGGING) wrote during the test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


def console_handler() -> logging.StreamHandler[Any]:
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "console" and isinstance(handler, logging.StreamHandler):
            return handler
    raise AssertionError("settings.LOGGING's console handler is not on the root logger")


@pytest.fixture
def console() -> Iterator[ConsoleOutput]:
    handler = console_handler()
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield ConsoleOutput(stream)
    finally:
        handler.setStream(previous)


@pytest.fixture
def sandbox_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code sandbox reports ready (these tests are not about bubblewrap)."""
    from code_interpreter import readiness, sandbox
    from librechat import readiness as librechat_readiness

    monkeypatch.setattr(sandbox, "sandbox_status", lambda: (True, "Sandbox ready (test)."))
    monkeypatch.setattr(sandbox, "available_languages", lambda: {"py": "Python", "bash": "Bash"})
    monkeypatch.setattr(readiness, "_sandbox_memo", None)
    monkeypatch.setattr(librechat_readiness, "_librechat_memo", None)
