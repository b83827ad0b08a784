"""LibreChat v0.8.8's execution profiles and the replies whose shape LibreChat dictates.

LibreChat sends ``X-CodeAPI-Expected-Profile: default|stateful`` on its Code API calls and
points each profile at its own base URL (``LIBRECHAT_CODE_BASEURL`` and
``LIBRECHAT_CODE_BASEURL_STATEFUL``). We serve both: ``/api/code/v1`` is the ``default``
profile, ``/api/code/stateful/v1`` the ``stateful`` one (the same routes; a
``runtime_session_hint`` runs in the caller's warm sandbox for that hint on either). Every reply
names its profile in ``X-CodeAPI-Execution-Profile``; a request that expects the other profile
is refused before anything runs, as the official service refuses it.

A few refusals are read by LibreChat's client by their top-level ``error``/``code`` word
(``@librechat/agents`` 3.9 ``CodeExecutor.ts getCodeApiCapabilityErrorMessage``), so they keep
the official service's flat body ``{"error": "<word>", "message", ...}`` instead of our error
shape; every other error is in the one shape (``core.errors``). docs/code-interpreter.md has the
decision table.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest, JsonResponse

Profile = Literal["default", "stateful"]
PROFILES: tuple[Profile, ...] = ("default", "stateful")
EXPECTED_HEADER = "X-CodeAPI-Expected-Profile"
PROFILE_HEADER = "X-CodeAPI-Execution-Profile"
# LibreChat's setting for each profile's base URL, and where we serve that profile.
BASE_URLS: dict[str, tuple[str, str]] = {
    "default": ("LIBRECHAT_CODE_BASEURL", "/api/code/v1"),
    "stateful": ("LIBRECHAT_CODE_BASEURL_STATEFUL", "/api/code/stateful/v1"),
}


class ContractRefusal(Exception):
    """A refusal in the official service's flat body, which LibreChat's client parses."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message, **extra}

    def response(self) -> JsonResponse:
        return JsonResponse(self.body, status=self.status)


def check_expected(request: HttpRequest, actual: Profile) -> None:
    """Refuse a request that expects another profile than the one its URL serves."""
    expected = request.headers.get(EXPECTED_HEADER)
    if expected is None:
        return  # older clients (LibreChat v0.8.7) send none: no wrong-endpoint check
    if expected not in PROFILES:
        raise ContractRefusal(
            400,
            "invalid_execution_profile",
            f"Invalid execution profile: {expected[:64]}",
            expected_profile=expected[:64],
            actual_profile=actual,
        )
    if expected != actual:
        setting, path = BASE_URLS[expected]
        raise ContractRefusal(
            409,
            "execution_profile_mismatch",
            f"Expected the {expected} execution profile, but reached {actual}. Point {setting} "
            f"at our {path}.",
            expected_profile=expected,
            actual_profile=actual,
        )


def runtime_session_busy() -> ContractRefusal:
    return ContractRefusal(
        409,
        "runtime_session_busy",
        "Runtime session is busy: another execution with this runtime_session_hint is running. "
        "Retry when it has finished.",
    )


def unsupported_capability(message: str) -> ContractRefusal:
    """LibreChat tells the model not to retry this (a permanent capability mismatch)."""
    return ContractRefusal(501, "unsupported_capability", message)
