"""The proxy's connection pool to LibreChat keeps no cookies: they belong to one user."""

from __future__ import annotations

import asyncio
import json

import httpx

from librechat import upstream
from tests.librechat_double import LibreChatDouble

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)


def test_librechat_cookies_are_never_kept_for_the_next_request(librechat: LibreChatDouble) -> None:
    librechat.state.add_user(email="ada@example.com", password="pw-0123456789")

    async def call(method: str, path: str, body: bytes | None = None) -> httpx.Response:
        headers = [("user-agent", BROWSER_UA)]
        if body is not None:
            headers.append(("content-type", "application/json"))
        response = await upstream.send(
            method,
            f"{librechat.url}{path}",
            headers=headers,
            content=body,
            timeout=upstream.timeout_for(stream=False),
        )
        await response.aread()
        await response.aclose()
        return response

    async def run() -> tuple[bool, list[str | None]]:
        credentials = {"email": "ada@example.com", "password": "pw-0123456789"}
        login = await call("POST", "/api/auth/login", json.dumps(credentials).encode())
        had_cookie = "refreshToken=" in login.headers.get("set-cookie", "")
        for _ in range(2):
            await call("GET", "/api/config")
        sent = [r.header("cookie") for r in librechat.state.requests_to("/api/config")]
        return had_cookie, sent

    had_cookie, cookies_sent = asyncio.run(run())
    assert had_cookie, "the double's login should set the refresh cookie"
    assert cookies_sent == [None, None]
