"""/api/auth/register, /login, /refresh and /logout, middleware chains included."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from . import releases
from .cookies import LOGOUT_CLEARED_COOKIES, auth_cookie, cleared_cookie, parse_cookie_header
from .express import (
    BodySyntaxError,
    HeaderList,
    read_body,
    redirect,
    send_json,
    send_text,
    with_headers,
)
from .guards import authenticate, ban_response, double_state, request_ip
from .rate_limit import (
    legacy_headers,
    login_limit_message,
    register_limit_message,
    retry_after_header,
)
from .state import DoubleState, Session, User, passwords_match
from .tokens import JwtRejected, is_object_id, sha256_hex, sign_jwt, verify_jwt
from .validation import MISSING, errors_to_string, validate_login, validate_registration

# validateEmailLogin's refusal (0.8.8).
EMAIL_LOGIN_REFUSED = "Email login is not allowed."
GENERIC_REGISTRATION_MESSAGE = "Please check your email to verify your email address."
DOMAIN_REJECTED_MESSAGE = (
    "The email address provided cannot be used. Please use a different email address."
)


async def register(request: Request) -> Response:
    """registerLimiter → checkBan → checkInviteUser → validateRegistration → registerUser."""
    admitted = await _limited_and_not_banned(request, "register")
    if isinstance(admitted, Response):
        return admitted
    state, body, headers = admitted
    config = state.config
    refused = _registration_gate(state, body)
    if refused is not None:
        return with_headers(refused, headers)
    issues = validate_registration(body, min_password_length=config.min_password_length)
    if issues:
        return send_json({"message": errors_to_string(issues)}, status=404, headers=headers)
    email, password = str(body["email"]), str(body["password"])
    if not _domain_allowed(email, config.allowed_domains):
        return send_json({"message": DOMAIN_REJECTED_MESSAGE}, status=403, headers=headers)
    username = body.get("username")
    _user, created = state.register_user(
        email,
        password,
        name=str(body["name"]),
        username=username if isinstance(username, str) else "",
        email_verified=not config.email_verification_required,
    )
    if created:
        state.count("accounts_created")
    else:
        # Same answer as a success, one second later: the caller cannot tell the two apart.
        state.count("duplicate_registrations")
        await asyncio.sleep(config.duplicate_delay_s)
    return send_json({"message": GENERIC_REGISTRATION_MESSAGE}, headers=headers)


async def _limited_and_not_banned(
    request: Request, route: Literal["register", "login"]
) -> tuple[DoubleState, Any, HeaderList] | Response:
    """What register and login share: body-parser → the per-IP limiter → checkBan.

    Counts the call first. checkBan also bans by `req.body.email`. Answers the state, the parsed
    body and the limiter's headers, which every later answer of the route carries too.
    """
    state = double_state(request)
    config = state.config
    if route == "register":
        state.count("register_calls")
        limiter, limit_message = state.register_limiter, register_limit_message
        max_requests, window_s = config.register_max, config.register_window_s
    else:
        state.count("login_calls")
        limiter, limit_message = state.login_limiter, login_limit_message
        max_requests, window_s = config.login_max, config.login_window_s
    try:
        body = await read_body(request)
    except BodySyntaxError as error:
        return error.response()
    ip = request_ip(request, state)
    limit = limiter.hit(ip or "", limit=max_requests, window_s=window_s, now=state.now())
    headers = legacy_headers(limit)
    if limit.exceeded:
        headers.append(retry_after_header(limit, now=state.now()))
        return send_json({"message": limit_message(window_s)}, status=429, headers=headers)
    banned = ban_response(state, ip=ip, user_id=_user_id_for_email(state, body))
    if banned is not None:
        return with_headers(banned, headers)
    return state, body, headers


def _registration_gate(state: DoubleState, body: Any) -> Response | None:
    """checkInviteUser + validateRegistration: a matching invite opens a closed registration."""
    if body is MISSING:
        # checkInviteUser reads `req.body.token` on an undefined body: Express's error handler.
        return send_text("An unknown error occurred.", status=500)
    invite_token = body.get("token") if isinstance(body, dict) else None
    if invite_token and invite_token != "undefined":
        if not state.consume_invite(str(invite_token), body.get("email")):
            return send_json({"message": "Invalid invite token"}, status=400)
        return None
    if not state.config.allow_registration:
        return send_json({"message": "Registration is not allowed."}, status=403)
    return None


async def login(request: Request) -> Response:
    """loginLimiter → checkBan → [0.8.8: validateEmailLogin] → requireLocalAuth (passport-local)
    → loginController."""
    admitted = await _limited_and_not_banned(request, "login")
    if isinstance(admitted, Response):
        return admitted
    state, body, headers = admitted
    config = state.config
    if (
        releases.gates_password_login(config.version)
        and not config.allow_email_login
        and not config.allow_email_login_override
    ):
        # validateEmailLogin (0.8.8), after checkBan and before passport.
        state.count("email_login_refusals")
        return send_json({"message": EMAIL_LOGIN_REFUSED}, status=403, headers=headers)
    if not _passport_field(body, "email") or not _passport_field(body, "password"):
        return send_json({"message": "Missing credentials"}, status=404, headers=headers)
    issues = validate_login(body, min_password_length=config.min_password_length)
    if issues:
        return send_json({"message": errors_to_string(issues)}, status=404, headers=headers)
    user = state.get_user(str(body["email"]))
    if user is None:
        return send_json({"message": "Email does not exist."}, status=404, headers=headers)
    if not passwords_match(user.password, str(body["password"])):
        return send_json({"message": "Incorrect password."}, status=404, headers=headers)
    if not user.email_verified and not config.allow_unverified_email_login:
        return send_json({"message": "Email not verified."}, status=422, headers=headers)
    session = state.open_session(user.id)
    document = {**user.lean_document(), "id": user.id}
    response = _token_response(state, user, session, document, headers)
    state.count("login_successes")
    return response


async def refresh(request: Request) -> Response:
    """refreshController: cookie only, no limiter; rotation keeps the session's expiry."""
    state = double_state(request)
    state.count("refresh_calls")
    refresh_token = parse_cookie_header(request.headers.get("cookie")).get("refreshToken")
    if not refresh_token:
        return send_text("Refresh token not provided")
    try:
        claims = verify_jwt(refresh_token, state.config.jwt_refresh_secret, now=state.now())
        user_id = claims.get("id")
        if not is_object_id(user_id):
            # Mongoose cannot cast it: the catch-all below in LibreChat.
            raise JwtRejected("invalid id")
    except JwtRejected:
        state.count("refresh_invalid_token_failures")
        return send_text("Invalid refresh token", status=403)
    user = state.user_by_id(str(user_id))
    if user is None:
        # `res.status(401).redirect('/login')`: Express turns it into a 302.
        return redirect("/login")
    session = state.find_live_session(user.id, sha256_hex(refresh_token))
    # LibreChat awaits the database between finding and re-hashing the session, so two
    # concurrent refreshes with one cookie can both succeed; only the last new token survives.
    await asyncio.sleep(state.config.session_store_latency_s)
    if session is None:
        if request.query_params.get("retry"):
            return send_text("No session found", status=403)
        state.count("refresh_reused_token_failures")
        return send_text("Refresh token expired or not found for this user", status=401)
    response = _token_response(state, user, session, user.lean_document())
    state.count("refresh_successes")
    return response


async def logout(request: Request) -> Response:
    """logoutController: deletes the cookie's session; the access token stays valid until exp."""
    state = double_state(request)
    state.count("logout_calls")
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    refresh_token = parse_cookie_header(request.headers.get("cookie")).get("refreshToken")
    # Without a cookie, findSession({userId}) matches any live session of the user: one goes.
    token_hash = sha256_hex(refresh_token) if refresh_token else None
    session = state.find_live_session(user.id, token_hash)
    if session is not None:
        state.delete_session(session.id)
    response = send_json({"message": "Logout successful"})
    for name in LOGOUT_CLEARED_COOKIES:
        response.headers.append("Set-Cookie", cleared_cookie(name))
    return response


def _access_token(state: DoubleState, user: User) -> str:
    """generateToken: {id, username, provider, email}, HS256 with JWT_SECRET, SESSION_EXPIRY."""
    claims = {
        "id": user.id,
        "username": user.username,
        "provider": user.provider,
        "email": user.email,
    }
    return sign_jwt(
        claims,
        state.config.jwt_secret,
        now=state.now(),
        expires_in_s=state.config.session_expiry_s,
    )


def _rotate_refresh_token(state: DoubleState, session: Session) -> str:
    """generateRefreshToken: a JWT that expires with the session; its SHA-256 is stored."""
    now = state.now()
    seconds_left = math.floor((session.expires_at * 1000 - now * 1000) / 1000)
    token = sign_jwt(
        {"id": session.user_id, "sessionId": session.id},
        state.config.jwt_refresh_secret,
        now=now,
        expires_in_s=seconds_left,
    )
    state.store_refresh_hash(session.id, sha256_hex(token))
    return token


def _token_response(
    state: DoubleState,
    user: User,
    session: Session,
    document: dict[str, Any],
    headers: HeaderList | None = None,
) -> Response:
    """Login's and refresh's 200: `{token, user}` with the two auth cookies.

    The session's refresh token is rotated first; its cookie expires with the session.
    """
    refresh_token = _rotate_refresh_token(state, session)
    response = send_json({"token": _access_token(state, user), "user": document}, headers=headers)
    secure = state.config.secure_cookies
    for name, value in (("refreshToken", refresh_token), ("token_provider", "librechat")):
        cookie = auth_cookie(name, value, expires_at=session.expires_at, secure=secure)
        response.headers.append("Set-Cookie", cookie)
    return response


def _user_id_for_email(state: DoubleState, body: Any) -> str | None:
    """checkBan looks the user up by `req.body.email` when nobody is authenticated."""
    email = body.get("email") if isinstance(body, dict) else None
    user = state.get_user(email) if isinstance(email, str) else None
    return user.id if user else None


def _passport_field(body: Any, field: str) -> Any:
    """passport-local's lookup: objects, arrays and null count as missing, like falsy values."""
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, dict | list):
        return None
    return value


def _domain_allowed(email: str, allowed: tuple[str, ...] | None) -> bool:
    if not allowed:
        return True
    domain = email.rsplit("@", 1)[-1].lower()
    return domain in {entry.lower() for entry in allowed}
