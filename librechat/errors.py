"""The one error type of every call to LibreChat (auth, the chat upstream, the probes)."""

from __future__ import annotations

from typing import Any


class LibreChatError(Exception):
    """A failed LibreChat call. ``permanent``: retrying the same call cannot succeed.

    ``status`` is LibreChat's HTTP status (None when it was not reached), ``retry_after`` the
    seconds it asked us to wait (429), ``timed_out`` whether it was reached but did not answer in
    time, and ``detail`` what LibreChat said when it said more than a message (a chat denial's
    reason, as LibreChat sent it).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        timed_out: bool = False,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after
        self.timed_out = timed_out
        self.detail = detail

    @property
    def rate_limited(self) -> bool:
        return self.status == 429
