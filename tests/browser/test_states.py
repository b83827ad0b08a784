"""States of the page in real Chromium: provisioning pending, LibreChat unreachable, the
sidebar's pages, search and archive, the keyboard, a phone."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, Route, ViewportSize, expect

from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD, make_legacy_user
from tests.librechat_double.server import LibreChatDouble
from users.models import User

from .conftest import PHONE, log_in, open_chat
from .pages import SLOW_WORDS, ChatPage


def test_provisioning_pending_disables_chat_until_active(
    page: Page, fast_librechat: LibreChatDouble
) -> None:
    user = make_legacy_user(email="pending@example.com")
    log_in(page, user.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    expect(chat.provisioning_banner).to_be_visible()
    expect(chat.prompt).to_be_disabled()
    expect(chat.send).to_be_disabled()
    expect(page.get_by_role("button", name="Attach files")).to_be_disabled()
    assert fast_librechat.state.counter("chat_requests") == 0

    activate(user, fast_librechat)
    expect(chat.provisioning_banner).to_be_hidden()
    chat.ready()
    chat.ask("Hello")
    chat.finished()
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")


def test_failed_and_conflict_say_what_is_true_and_what_to_do(
    page: Page, fast_librechat: LibreChatDouble
) -> None:
    """Not "we keep trying" for states that never change by themselves: the banner says what is
    true and to contact support, and still opens the chat when an administrator fixes it."""
    user = make_legacy_user(
        email="conflict@example.com",
        provisioning_state="conflict",
        provisioning_permanent=True,
        provisioning_attempts=1,
    )
    log_in(page, user.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    banner = chat.provisioning_banner
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your chat account could not be set up.")
    expect(banner).to_contain_text("already has an account with your e-mail address")
    expect(banner).to_contain_text("contact support")
    expect(banner).not_to_contain_text("keep trying")
    expect(banner).to_have_class(re.compile(r"\bbanner-error\b"))
    expect(chat.prompt).to_be_disabled()

    # An administrator resolves it and re-provisions: pending (retrying), then active.
    User.objects.filter(pk=user.pk).update(provisioning_state="pending")
    expect(banner).to_contain_text("Setting up your chat account…")
    expect(banner).to_contain_text("being set up")
    expect(banner).to_have_class(re.compile(r"\bbanner-warn\b"))
    activate(user, fast_librechat)
    expect(banner).to_be_hidden()
    chat.ready()


def test_a_failure_that_is_retried_says_so(page: Page, fast_librechat: LibreChatDouble) -> None:
    user = make_legacy_user(
        email="failed@example.com", provisioning_state="failed", provisioning_attempts=1
    )
    log_in(page, user.email, DEFAULT_PASSWORD)
    banner = ChatPage(page).provisioning_banner
    expect(banner).to_contain_text("Setting up your chat account…")
    expect(banner).to_contain_text("We try again automatically")
    # The next run fails for good: the page follows without a reload.
    User.objects.filter(pk=user.pk).update(provisioning_permanent=True)
    expect(banner).to_contain_text("Your chat account could not be set up.")
    expect(banner).to_contain_text("an administrator has to fix it")


def test_librechat_down_shows_a_banner_and_recovers(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    fast_librechat.set_mode("down")
    log_in(page, alice.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    expect(chat.unreachable_banner).to_be_visible()
    expect(chat.unreachable_banner).to_contain_text("The chat service is unreachable.")
    expect(chat.prompt).to_be_disabled()

    fast_librechat.set_mode("ok")
    page.get_by_role("button", name="Retry now").click()
    expect(chat.unreachable_banner).to_be_hidden()
    chat.ready()

    # Down again while sending: the banner comes back and the draft is not lost.
    fast_librechat.set_mode("down")
    chat.ask("Are you there?")
    expect(chat.unreachable_banner).to_be_visible()
    expect(chat.prompt).to_be_disabled()
    expect(chat.prompt).to_have_value("Are you there?")
    expect(chat.messages("user")).to_have_count(0)
    fast_librechat.set_mode("ok")
    page.get_by_role("button", name="Retry now").click()
    chat.ready()
    chat.send.click()
    chat.finished()
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")


def add_conversations(librechat: LibreChatDouble, user: User, count: int) -> None:
    for number in range(1, count + 1):
        librechat.state.chat.save_convo(
            user.librechat_user_id,
            str(uuid.uuid4()),
            {"title": f"Topic {number:02d}", "endpoint": "Fake", "model": "fake-model"},
        )


def test_sidebar_pages_searches_and_archives(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    add_conversations(fast_librechat, alice, 30)
    log_in(page, alice.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    links = chat.sidebar.get_by_role("link")
    expect(links).to_have_count(25)  # one page, newest first
    expect(links.first).to_have_text("Topic 30")
    chat.sidebar.get_by_role("button", name="Load more").click()
    expect(links).to_have_count(30)
    expect(links.last).to_have_text("Topic 01")
    expect(chat.sidebar.get_by_role("button", name="Load more")).to_be_hidden()

    page.get_by_role("searchbox", name="Search conversations").fill("Topic 07")
    expect(links).to_have_count(1)
    chat.convo("Topic 07").hover()  # the row's buttons unfold
    page.get_by_role("button", name="Archive “Topic 07”").click()
    expect(links).to_have_count(0)
    expect(page.get_by_text("No conversation titles match.")).to_be_visible()
    page.get_by_role("searchbox", name="Search conversations").fill("")
    expect(links).to_have_count(25)
    expect(chat.convo("Topic 07")).to_have_count(0)
    page.get_by_label("Show archived").check()
    expect(links).to_have_text(["Topic 07"])
    chat.convo("Topic 07").hover()
    page.get_by_role("button", name="Unarchive “Topic 07”").click()
    expect(page.get_by_text("No archived conversations.")).to_be_visible()


def test_the_sidebar_and_composer_work_from_the_keyboard(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    add_conversations(fast_librechat, alice, 1)
    chat = open_chat(page, alice.email)
    link = chat.convo("Topic 01")
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/c/[0-9a-f-]{36}/$"))
    expect(chat.title).to_have_text("Topic 01")
    link.focus()
    page.keyboard.press("Tab")
    rename = page.get_by_role("button", name="Rename “Topic 01”")
    expect(rename).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("textbox", name="New title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(link).to_be_focused()
    # New chat, then straight into the composer.
    page.get_by_role("button", name="New chat").focus()
    page.keyboard.press("Enter")
    expect(chat.prompt).to_be_focused()
    page.keyboard.type("Hi")
    page.keyboard.press("Enter")
    chat.finished()
    expect(chat.log).to_contain_text("Hello from the fake model.")


def test_a_phone_gets_a_drawer_and_no_sideways_scrolling(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    add_conversations(fast_librechat, alice, 3)
    page.set_viewport_size(PHONE)
    chat = open_chat(page, alice.email)
    expect(chat.convo("Topic 03")).not_to_be_in_viewport()
    toggle = page.get_by_role("button", name="Conversations")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(chat.convo("Topic 03")).to_be_in_viewport()
    chat.convo("Topic 02").click()
    expect(chat.title).to_have_text("Topic 02")
    expect(chat.convo("Topic 03")).not_to_be_in_viewport()
    chat.ask("MARKDOWN on a phone")
    chat.finished()
    box = chat.prompt.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]


AT_BOTTOM = """() => {
  const log = document.getElementById("messages");
  return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
}"""


def test_autoscroll_follows_until_the_reader_scrolls_up(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    fast_librechat.config.update(fake_token_delay_s=0.04)
    page.set_viewport_size(ViewportSize(width=1000, height=600))
    chat = open_chat(page, alice.email)
    chat.ask("ECHO: " + "\n\n".join(f"Paragraph {n}." for n in range(1, 41)))
    text = chat.answer_text()
    expect(text).to_contain_text("Paragraph 12.")  # taller than the log by now
    page.wait_for_function(AT_BOTTOM)  # following the answer
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_hidden()

    # The reader scrolls up (the same scroll event a wheel or a swipe gives).
    page.evaluate("document.getElementById('messages').scrollTop = 0")
    expect(jump).to_be_visible()
    expect(text).to_contain_text("Paragraph 30.")  # more text came meanwhile
    assert page.evaluate("document.getElementById('messages').scrollTop") == 0
    jump.click()
    page.wait_for_function(AT_BOTTOM)
    chat.finished()
    expect(text).to_contain_text("Paragraph 40.")
    page.wait_for_function(AT_BOTTOM)


def test_librechat_starting_up_is_shown_as_a_state_with_retry(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    """LibreChat answers the chat POST with 503 SERVER_NOT_READY while it starts."""
    chat = open_chat(page, alice.email)
    fast_librechat.set_ready(False)
    chat.ask("Are you up?")
    expect(chat.unreachable_banner).to_be_visible()
    expect(chat.unreachable_banner).to_contain_text("The chat service is starting up.")
    expect(chat.prompt).to_be_disabled()
    expect(chat.prompt).to_have_value("Are you up?")
    expect(chat.messages("user")).to_have_count(0)
    expect(page.locator("#banner-error")).to_be_hidden()  # no raw "HTTP 503"

    fast_librechat.set_ready(True)
    page.get_by_role("button", name="Retry now").click()
    expect(chat.unreachable_banner).to_be_hidden()
    chat.ready()
    chat.send.click()
    chat.finished()
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")


def test_a_chat_post_without_a_usable_answer_gives_the_composer_back(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    chat = open_chat(page, alice.email)
    error = page.locator("#banner-error")
    post = "**/api/chat/agents/chat/Fake"
    page.route(post, lambda route: route.fulfill(status=200, body=""))
    chat.ask("Hello?")
    expect(error).to_contain_text("The chat service did not start the answer.")
    expect(chat.prompt).to_be_enabled()
    expect(chat.prompt).to_have_value("Hello?")
    expect(chat.send).to_be_enabled()
    expect(chat.stop).to_be_hidden()
    expect(chat.messages("user")).to_have_count(0)

    # LibreChat's pre-start denials: status 200 and an SSE error body.
    page.unroute(post)
    page.route(
        post,
        lambda route: route.fulfill(
            status=200, body='event: error\ndata: {"message":"Illegal request"}\n\n'
        ),
    )
    chat.send.click()
    expect(error).to_have_text("Illegal request")
    expect(chat.prompt).to_be_enabled()
    expect(chat.prompt).to_have_value("Hello?")

    page.unroute(post)
    chat.send.click()
    chat.finished()
    expect(error).to_be_hidden()
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")


def test_stop_can_be_pressed_again_when_the_abort_request_fails(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    fast_librechat.config.update(fake_slow_token_count=SLOW_WORDS, fake_slow_token_delay_s=0.25)
    failed: list[str] = []

    def fail_once(route: Route) -> None:
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.abort("connectionreset")

    page.route("**/api/chat/agents/chat/abort", fail_once)
    chat = open_chat(page, alice.email)
    chat.ask("SLOW stop me twice.")
    expect(chat.answer_text()).to_contain_text("w02")
    chat.stop.click()
    expect(page.locator("#banner-error")).to_have_text(
        "Could not stop the answer. Please try again."
    )
    expect(chat.stop).to_be_enabled()
    expect(chat.answer()).to_have_attribute("aria-busy", "true")
    expect(chat.unreachable_banner).to_be_hidden()
    assert len(failed) == 1

    chat.stop.click()
    chat.finished()
    expect(chat.answer()).to_contain_text("Stopped before the end.")
    expect(page.locator("#banner-error")).to_be_hidden()
    assert "w20" not in chat.answer_text().inner_text()
    assert fast_librechat.state.counter("generations_aborted") == 1
