"""What this app adds to ``/readyz`` and to the web server's start-up (registered in apps.py)."""

from __future__ import annotations

import logging
import time

from code_interpreter import sandbox
from core.health import CheckFailed

logger = logging.getLogger("code_interpreter")

_sandbox_memo: tuple[float, bool, str] | None = None
SANDBOX_MEMO_S = 30.0


def check_sandbox() -> str:
    """The sandbox's own readiness function; a failing result is re-checked every 30 s only,
    because checking can start a real sandbox. The detail says how memory is enforced."""
    global _sandbox_memo
    now = time.monotonic()
    if _sandbox_memo is None or now - _sandbox_memo[0] > SANDBOX_MEMO_S:
        ready, message = sandbox.sandbox_status()
        _sandbox_memo = (now, ready, message)
    _, ready, message = _sandbox_memo
    if not ready:
        raise CheckFailed(message)
    return f"ready; {sandbox.memory_enforcement().describe()}"


def log_sandbox_status() -> None:
    """Uvicorn runs no system checks: say at start-up whether the code interpreter can execute."""
    ready, message = sandbox.sandbox_status()
    logger.log(logging.INFO if ready else logging.ERROR, message)
