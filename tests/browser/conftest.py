"""Real headless Chromium (Debian's, through Playwright) against our app under uvicorn and the
LibreChat double. `make pytest` installs Chromium (scripts/install-browser.sh) and the chat UI's
vendored libraries (scripts/install-frontend.sh).

Playwright's sync API runs its event loop in a greenlet of the test thread, so between calls
`asyncio.get_running_loop()` answers with that loop and Django would refuse ORM calls from the
test ("SynchronousOnlyOperation"). The test code is plain synchronous code, so for the life of
this package's browser (only) we set DJANGO_ALLOW_ASYNC_UNSAFE, as Playwright's Django guide
does, and restore it afterwards so that other packages keep Django's guard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.browser.pages import ChatPage
from tests.chat.conftest import alice, app_server
from tests.factories import DEFAULT_PASSWORD
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer

__all__ = ["alice", "app_server"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
# Short model delays, except the slow script, which must be slow enough to watch (and stop).
FAST_DOUBLE = {
    "duplicate_delay_s": 0.0,
    "fake_start_delay_s": 0.01,
    "fake_token_delay_s": 0.02,
    "fake_title_delay_s": 0.005,
    "fake_final_delay_s": 0.01,
    "fake_slow_token_delay_s": 0.25,
    "fake_slow_token_count": 24,
    "gen_title_poll_delays_s": (0.05, 0.05),
}
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def fast_librechat(librechat: LibreChatDouble) -> LibreChatDouble:
    librechat.config.update(**FAST_DOUBLE)
    return librechat


@pytest.fixture
def context(
    browser: Browser, app_server: AppServer, fast_librechat: LibreChatDouble
) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=app_server.url, viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    yield context
    context.close()


# Every Content-Security-Policy violation, reported to the test as it happens (navigations
# included). One is expected and allowed: DOMPurify parses untrusted HTML with DOMParser, and
# Chromium reports an inline handler there (`<img onerror>` from a model) as a script-src-attr
# violation although nothing in that inert document ever runs; the handler is then removed.
REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation({
    directive: event.effectiveDirective, blocked: event.blockedURI, source: event.sourceFile,
    sample: event.sample,
  });
});"""
SANITISER = "/static/vendor/dompurify/"


def csp_violation_is_expected(violation: dict[str, str]) -> bool:
    return violation["directive"] == "script-src-attr" and SANITISER in violation["source"]


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab that fails the test on any uncaught JavaScript error or Content-Security-Policy
    violation."""
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))

    def on_violation(violation: dict[str, str]) -> None:
        if not csp_violation_is_expected(violation):
            errors.append(f"CSP violation: {violation}")

    page.expose_function("__cspViolation", on_violation)
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


def log_in(page: Page, email: str, password: str, *, next_url: str = "/chat/") -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_url}")


def open_chat(page: Page, email: str) -> ChatPage:
    """Log in with the factories' password and wait until the composer can be used."""
    log_in(page, email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    chat.ready()
    return chat
