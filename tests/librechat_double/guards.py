"""The middleware LibreChat puts in front of its routes: requireJwtAuth, checkBan, uaParser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .client_ip import express_request_ip, through_proxies
from .cookies import cleared_cookie
from .express import BodySyntaxError, read_body, send_json
from .state import DoubleState, User
from .tokens import JwtRejected, is_object_id, verify_jwt
from .user_agent import browser_name

BAN_MESSAGE = "Your account has been temporarily banned due to violations of our service."
ILLEGAL_REQUEST_BODY = 'event: error\ndata: {"message":"Illegal request"}\n\n'
NON_BROWSER_VIOLATION = "non_browser"
# passport-jwt's ExtractJwt.fromAuthHeaderAsBearerToken(): the first two non-space runs.
_AUTH_HEADER = re.compile(r"(\S+)\s+(\S+)")


def double_state(request: Request) -> DoubleState:
    return cast(DoubleState, request.app.state.double)


def request_ip(request: Request, state: DoubleState) -> str | None:
    peer = request.client.host if request.client else None
    forwarded_for = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    forwarded_for = through_proxies(peer, forwarded_for, state.config.proxies_in_front)
    return express_request_ip(peer, forwarded_for, state.config.trust_proxy)


def bearer_token(header: str | None) -> str | None:
    match = _AUTH_HEADER.search(header or "")
    if match is None or match.group(1).lower() != "bearer":
        return None
    return match.group(2)


def authenticate(request: Request, state: DoubleState) -> User | Response:
    """requireJwtAuth: any unexpired JWT_SECRET token whose `id` is a user; no session check."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return send_json({"message": "No auth token"}, status=401)
    try:
        claims = verify_jwt(token, state.config.jwt_secret, now=state.now())
    except JwtRejected as rejected:
        return send_json({"message": rejected.reason}, status=401)
    user_id = claims.get("id")
    user = state.user_by_id(str(user_id)) if is_object_id(user_id) else None
    if user is None:
        return send_json({"message": "Unauthorized"}, status=401)
    return user


def ban_response(state: DoubleState, *, ip: str | None, user_id: str | None) -> Response | None:
    """checkBan: a ban on the request IP or on the user refuses the request (when bans are on)."""
    if not state.config.ban_violations:
        return None
    if state.is_banned(ip, user_id):
        return send_json({"message": BAN_MESSAGE}, status=403)
    return None


def non_browser_response(
    request: Request, state: DoubleState, *, user: User, ip: str | None
) -> Response | None:
    """uaParser: a User-Agent without a browser name costs NON_BROWSER_VIOLATION_SCORE points."""
    user_agent = request.headers.get("user-agent")
    if browser_name(user_agent) is not None and not _refused_anyway(user_agent, state):
        return None
    state.count("non_browser_requests")
    crossed_threshold = state.record_violation(
        user_id=user.id,
        ip=ip,
        violation_type=NON_BROWSER_VIOLATION,
        score=state.config.non_browser_violation_score,
    )
    # handleError writes the SSE-style error with status 200 and no Content-Type, chunked.
    response = StreamingResponse(_once(ILLEGAL_REQUEST_BODY), status_code=200)
    if crossed_threshold:
        response.headers.append("Set-Cookie", cleared_cookie("refreshToken"))
    return response


def _refused_anyway(user_agent: str | None, state: DoubleState) -> bool:
    pattern = state.config.non_browser_user_agent_pattern
    return bool(pattern and re.search(pattern, user_agent or "", re.IGNORECASE))


async def _once(text: str) -> AsyncIterator[bytes]:
    yield text.encode()


def guarded_user(request: Request, state: DoubleState) -> User | Response:
    """requireJwtAuth → checkBan → uaParser, the chain of /api/agents/* and /api/files/*."""
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    ip = request_ip(request, state)
    refused = ban_response(state, ip=ip, user_id=user.id) or non_browser_response(
        request, state, user=user, ip=ip
    )
    return refused if refused is not None else user


async def guarded_body(request: Request, state: DoubleState) -> tuple[Any, User] | Response:
    """body-parser (app-wide: a malformed body is a 400 before any auth), then guarded_user.

    Answers `req.body` and the user, or the first refusal.
    """
    try:
        body = await read_body(request)
    except BodySyntaxError as error:
        return error.response()
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    return body, user
