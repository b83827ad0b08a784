"""The proxy's connection pool to LibreChat keeps no cookies: they belong to one user."""

from __future__ import annotations

import asyncio

from chat import upstream
from tests.librechat_double import LibreChatDouble

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)


def test_librechat_cookies_are_never_kept_for_the_next_request(librechat: LibreChatDouble) -> None:
    librechat.state.add_user(email="ada@example.com", password="pw-0123456789")

    async def run() -> tuple[bool, int, list[str | None]]:
        client = upstream.client()
        login = await client.post(
            f"{librechat.url}/api/auth/login",
            json={"email": "ada@example.com", "password": "pw-0123456789"},
            headers={"User-Agent": BROWSER_UA},
        )
        had_cookie = "refreshToken=" in login.headers.get("set-cookie", "")
        await client.get(f"{librechat.url}/api/config", headers={"User-Agent": BROWSER_UA})
        again = await upstream.send(
            "GET",
            f"{librechat.url}/api/config",
            headers=[("user-agent", BROWSER_UA)],
            content=None,
            timeout=upstream.timeout_for("config"),
        )
        await again.aread()
        await again.aclose()
        sent = [r.header("cookie") for r in librechat.state.requests_to("/api/config")]
        return had_cookie, len(client.cookies.jar), sent

    had_cookie, jar_size, cookies_sent = asyncio.run(run())
    assert had_cookie, "the double's login should set the refresh cookie"
    assert jar_size == 0
    assert cookies_sent == [None, None]
