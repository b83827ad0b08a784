"""The LibreChat auth client against the double: sessions, rotation, and how failures are typed."""

from __future__ import annotations

import pytest

from librechat import LibreChatError
from librechat import auth as client
from tests.librechat_double.server import LibreChatDouble

PASSWORD = "Pw-0123456789abcdef"


def test_register_login_refresh_rotation_and_logout(librechat: LibreChatDouble) -> None:
    client.register(email="Kim@Example.com", password=PASSWORD, name="Kim", client_ip="192.0.2.1")
    first = client.login(email="kim@example.com", password=PASSWORD, client_ip="192.0.2.1")
    assert first.user_id == librechat.state.get_user("kim@example.com").id  # type: ignore[union-attr]
    assert first.refresh_token

    # Tokens minted in the same second are identical (JWT iat), as in LibreChat: move its clock.
    librechat.state.advance_clock(2)
    second = client.refresh(refresh_token=first.refresh_token, client_ip="192.0.2.1")
    assert second.refresh_token
    assert second.refresh_token != first.refresh_token
    assert second.user_id == first.user_id
    # LibreChat rotates the refresh token: the spent one is dead, permanently.
    with pytest.raises(LibreChatError) as spent:
        client.refresh(refresh_token=first.refresh_token)
    assert spent.value.status == 401
    assert spent.value.permanent

    client.logout(access_token=second.access_token, refresh_token=second.refresh_token)
    with pytest.raises(LibreChatError) as after_logout:
        client.refresh(refresh_token=second.refresh_token)
    assert after_logout.value.permanent


def test_failures_are_typed(librechat: LibreChatDouble) -> None:
    with pytest.raises(LibreChatError) as invalid:
        client.register(email="kim@example.com", password="short", name="Kim")
    assert (invalid.value.status, invalid.value.permanent) == (404, True)
    assert "password: String must contain at least 8 character(s)" in invalid.value.message

    with pytest.raises(LibreChatError) as unknown:
        client.login(email="nobody@example.com", password=PASSWORD)
    assert unknown.value.message == client.EMAIL_DOES_NOT_EXIST
    assert not unknown.value.permanent  # right after a register it may just be lag

    librechat.set_mode("ratelimit429", retry_after_s=7)
    with pytest.raises(LibreChatError) as limited:
        client.login(email="kim@example.com", password=PASSWORD)
    assert limited.value.rate_limited
    assert not limited.value.permanent
    assert limited.value.retry_after == 7

    librechat.set_mode("error500")
    with pytest.raises(LibreChatError) as broken:
        client.login(email="kim@example.com", password=PASSWORD)
    assert (broken.value.status, broken.value.permanent) == (500, False)

    librechat.set_mode("down")
    with pytest.raises(LibreChatError) as down:
        client.login(email="kim@example.com", password=PASSWORD)
    assert down.value.status is None
    assert not down.value.permanent
    assert "unreachable" in down.value.message


def test_no_refresh_cookie_is_a_permanent_failure(librechat: LibreChatDouble) -> None:
    # LibreChat answers 200 *text* "Refresh token not provided" here, not JSON.
    with pytest.raises(LibreChatError, match="Refresh token not provided") as error:
        client.refresh(refresh_token="")
    assert error.value.permanent


def test_one_users_cookie_never_rides_along_on_the_next_users_call(
    librechat: LibreChatDouble,
) -> None:
    """The client is shared by all users of the process: it must keep no cookie jar, or Ada's
    refreshToken (plain HTTP inside, so not Secure) would go out with Bobby's registration."""
    librechat.state.add_user("ada@example.com", PASSWORD)
    session = client.login(email="ada@example.com", password=PASSWORD)
    assert session.refresh_token  # LibreChat did set the cookie
    client.register(email="bo@example.com", password=PASSWORD, name="Bobby")
    client.login(email="bo@example.com", password=PASSWORD)
    [register] = librechat.state.requests_to("/api/auth/register")
    bo_login = librechat.state.requests_to("/api/auth/login")[-1]
    assert register.header("cookie") is None
    assert bo_login.header("cookie") is None


def test_email_login_switched_off_refuses_our_log_ins_from_0_8_8_on(
    librechat: LibreChatDouble, librechat_version: str
) -> None:
    """ALLOW_EMAIL_LOGIN=false: only a flag for LibreChat's login page on 0.8.7; from 0.8.8 it
    refuses POST /api/auth/login itself, unless ALLOW_EMAIL_LOGIN_OVERRIDE=true."""
    client.register(email="kim@example.com", password=PASSWORD, name="Kim")
    librechat.config.update(allow_email_login=False)
    if librechat_version == "0.8.7":
        assert client.login(email="kim@example.com", password=PASSWORD).user_id
        return
    with pytest.raises(LibreChatError) as refused:
        client.login(email="kim@example.com", password=PASSWORD)
    assert (refused.value.status, refused.value.permanent) == (403, True)
    assert refused.value.message.startswith(client.EMAIL_LOGIN_NOT_ALLOWED)
    assert "ALLOW_EMAIL_LOGIN_OVERRIDE=true" in refused.value.message
    librechat.config.update(allow_email_login_override=True)
    assert client.login(email="kim@example.com", password=PASSWORD).user_id
