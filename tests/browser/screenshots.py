"""The README's screenshots of the chat page (docs/screenshots/), made in the same set-up as the
browser tests. Not collected by `make pytest` (no `test_` prefix in the file name); run it with
`scripts/screenshots.sh`."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.librechat_double.server import LibreChatDouble
from users.models import User

from .conftest import PHONE, log_in, open_chat
from .pages import ChatPage

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MAX_BYTES = 200_000
TITLES = [
    "Quarterly budget summary",
    "Ideas for a weekend in Lisbon",
    "Why is the CI test flaky?",
    "Explain Rust lifetimes simply",
    "Draft a polite reminder e-mail",
    "SQL: rows per day, last 30 days",
]


def shoot(page: Page, name: str) -> None:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    assert 0 < path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size} bytes"


def with_history(librechat: LibreChatDouble, user: User) -> None:
    for title in TITLES:
        librechat.state.chat.save_convo(
            user.librechat_user_id,
            str(uuid.uuid4()),
            {"title": title, "endpoint": "Fake", "model": "fake-model"},
        )


def test_screenshots(page: Page, alice: User, fast_librechat: LibreChatDouble) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.emulate_media(reduced_motion="reduce")  # no drawer animation half-way in a picture
    with_history(fast_librechat, alice)
    chat = open_chat(page, alice.email)
    shoot(page, "empty-chat")

    fast_librechat.config.update(fake_token_delay_s=0.12, fake_title="Sum a CSV column in Python")
    chat.ask("MARKDOWN: how do I sum a CSV column in Python?")
    expect(chat.answer_text().locator("pre code")).to_contain_text("DictReader")
    expect(chat.stop).to_be_visible()
    shoot(page, "streaming-markdown")
    chat.finished()

    fast_librechat.config.update(fake_token_delay_s=0.02, fake_title="Compute and plot 6 x 7")
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Run code").check()
    chat.ask("RUNCODE: compute 6*7 and plot it.")
    chat.finished()
    image = chat.answer().get_by_role("img", name="plot.png")
    page.wait_for_function("(img) => img.naturalWidth === 4", arg=image.element_handle())
    shoot(page, "code-interpreter")

    page.get_by_role("button", name="New chat").click()
    page.set_viewport_size(PHONE)
    fast_librechat.config.update(fake_title="Reading CSV files")
    chat.ask("MARKDOWN on a phone")
    chat.finished()
    shoot(page, "phone")
    page.get_by_role("button", name="Conversations").click()
    expect(chat.convo(TITLES[0])).to_be_in_viewport()
    shoot(page, "phone-sidebar")


def test_screenshots_of_states(page: Page, fast_librechat: LibreChatDouble) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    user = make_legacy_user(email="new@example.com", name="New Person")
    log_in(page, user.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    expect(chat.provisioning_banner).to_be_visible()
    shoot(page, "provisioning-pending")

    activate(user, fast_librechat)
    chat.ready()
    with_history(fast_librechat, user)
    fast_librechat.set_mode("down")
    page.reload()
    expect(chat.unreachable_banner).to_be_visible()
    shoot(page, "librechat-down")
    fast_librechat.set_mode("ok")
