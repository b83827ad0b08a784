"""/__double__/*: drive the double from another process (the standalone server, e2e tests).

Not part of LibreChat. Failure modes never apply here, and these calls are not logged.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .guards import double_state
from .modes import GONE, FailureMode


class ServerControl(Protocol):
    """What the app needs from the server that runs it to switch listening off and on."""

    def apply_mode(self, mode: FailureMode) -> None: ...


def control_routes(server: ServerControl | None) -> list[Route]:
    async def set_mode(request: Request) -> Response:
        body = await _json(request)
        try:
            mode = FailureMode.build(str(body.pop("mode", "")), **body)
        except (TypeError, ValueError) as error:
            return _error(str(error))
        if mode.name in GONE and mode.duration_s is None:
            return _error(
                f"from another process, {mode.name!r} needs duration_s (nobody could undo it)"
            )
        if server is None and mode.name in GONE:
            return _error(f"{mode.name!r} needs the LibreChatDouble server around this app")
        if server is not None:
            server.apply_mode(mode)
        else:
            double_state(request).set_mode(mode)
        return JSONResponse({"mode": mode.name})

    return [
        Route("/__double__/state", state_summary, methods=["GET"]),
        Route("/__double__/reset", reset, methods=["POST"]),
        Route("/__double__/mode", set_mode, methods=["POST"]),
        Route("/__double__/ready", set_ready, methods=["POST"]),
        Route("/__double__/config", update_config, methods=["GET", "POST"]),
        Route("/__double__/clock", advance_clock, methods=["POST"]),
        Route("/__double__/users", add_user, methods=["POST"]),
        Route("/__double__/users/verification", set_verification, methods=["POST"]),
        Route("/__double__/invites", create_invite, methods=["POST"]),
        Route("/__double__/bans", ban, methods=["POST"]),
        Route("/__double__/requests", request_log, methods=["GET"]),
    ]


async def state_summary(request: Request) -> Response:
    return JSONResponse(double_state(request).summary())


async def reset(request: Request) -> Response:
    state = double_state(request)
    state.reset()
    return JSONResponse(state.summary())


async def set_ready(request: Request) -> Response:
    body = await _json(request)
    double_state(request).set_ready(bool(body.get("ready", True)))
    return JSONResponse({"ready": double_state(request).ready})


async def update_config(request: Request) -> Response:
    config = double_state(request).config
    if request.method == "POST":
        try:
            config.update(**await _json(request))
        except (TypeError, ValueError) as error:
            return _error(str(error))
    return JSONResponse(config.as_dict())


async def advance_clock(request: Request) -> Response:
    body = await _json(request)
    try:
        double_state(request).advance_clock(float(body.get("advance_s", 0)))
    except (TypeError, ValueError) as error:
        return _error(str(error))
    return JSONResponse(double_state(request).summary())


async def add_user(request: Request) -> Response:
    body = await _json(request)
    try:
        user = double_state(request).add_user(
            str(body["email"]),
            str(body["password"]),
            name=body.get("name"),
            username=str(body.get("username") or ""),
            role=body.get("role"),
            email_verified=bool(body.get("email_verified", True)),
        )
    except (KeyError, ValueError) as error:
        return _error(f"cannot add user: {error}")
    return JSONResponse({"id": user.id, "email": user.email, "role": user.role}, status_code=201)


async def set_verification(request: Request) -> Response:
    body = await _json(request)
    try:
        double_state(request).set_email_verified(str(body["email"]), bool(body["verified"]))
    except KeyError as error:
        return _error(f"unknown user or missing field: {error}")
    return JSONResponse({"email": body["email"], "verified": bool(body["verified"])})


async def create_invite(request: Request) -> Response:
    body = await _json(request)
    if "email" not in body:
        return _error("email is required")
    return JSONResponse({"token": double_state(request).create_invite(str(body["email"]))})


async def ban(request: Request) -> Response:
    body = await _json(request)
    if "key" not in body:
        return _error("key (a user id or an IP) is required")
    duration = body.get("duration_s")
    double_state(request).ban(
        str(body["key"]), duration_s=None if duration is None else float(duration)
    )
    return JSONResponse(double_state(request).summary())


async def request_log(request: Request) -> Response:
    path = request.query_params.get("path")
    entries = double_state(request).requests
    return JSONResponse([r.summary() for r in entries if path is None or r.path == path])


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)
