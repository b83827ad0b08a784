"""The main path in real Chromium: sign up, wait for the chat account, chat with streamed
tokens, stop, reload, find the conversation, rename and delete it; resume after a reload."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD
from tests.librechat_double.ids import NO_PARENT
from tests.librechat_double.server import LibreChatDouble
from users.models import ProvisioningState, User

from .conftest import log_in, open_chat
from .pages import SLOW_WORDS, ChatPage, slow_words

CONVERSATION_URL = re.compile(r"/chat/c/[0-9a-f-]{36}/$")


def sign_up(page: Page, email: str) -> User:
    page.goto("/accounts/signup/")
    page.locator("#id_email").fill(email)
    page.get_by_label("Display name").fill("Grace Hopper")
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    page.get_by_label("Password again").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/accounts/")
    return User.objects.get(email=email)


def test_sign_up_then_stream_stop_reload_rename_delete(
    page: Page, fast_librechat: LibreChatDouble
) -> None:
    librechat = fast_librechat
    librechat.config.update(fake_slow_token_count=SLOW_WORDS, fake_slow_token_delay_s=0.2)
    user = sign_up(page, "grace@example.com")
    assert user.provisioning_state == ProvisioningState.PENDING
    chat = ChatPage(page)
    page.get_by_role("link", name="Chat").click()
    expect(chat.provisioning_banner).to_be_visible()
    expect(chat.provisioning_banner).to_contain_text("Setting up your chat account")
    expect(chat.prompt).to_be_disabled()

    activate(user, librechat)  # what the provisioning workflow does; the page polls for it
    expect(chat.provisioning_banner).to_be_hidden()
    chat.ready()
    expect(page.get_by_role("heading", name="How can I help today?")).to_be_visible()

    chat.ask("SLOW please talk for a while.")
    text = chat.answer_text()
    expect(chat.stop).to_be_visible()
    expect(chat.prompt).to_be_disabled()
    # Tokens appear one after another while LibreChat is still generating.
    seen = []
    for word in ("w02", "w05", "w08"):
        expect(text).to_contain_text(word)
        seen.append(text.inner_text())
        assert "w20" not in seen[-1]
        assert librechat.state.chat.active_job_ids(), "the double should still be generating"
    assert len(seen[0]) < len(seen[1]) < len(seen[2])
    expect(chat.answer()).to_have_attribute("aria-busy", "true")

    chat.stop.click()
    chat.finished()
    expect(chat.answer()).to_contain_text("Stopped before the end.")
    stopped = text.inner_text()
    assert "w08" in stopped
    assert "w20" not in stopped
    assert librechat.state.counter("generations_aborted") == 1
    assert not librechat.state.chat.active_job_ids()
    expect(chat.send).to_be_visible()

    page.reload()
    expect(page).to_have_url(CONVERSATION_URL)
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    # An aborted first turn keeps LibreChat's "New Chat" title.
    expect(chat.convo("New Chat")).to_have_attribute("aria-current", "page")
    expect(chat.messages("user").get_by_test_id("message-content")).to_have_text(
        "SLOW please talk for a while."
    )
    expect(chat.answer_text()).to_contain_text("w01 w02")

    page.get_by_role("button", name="Rename “New Chat”").click()
    title_box = page.get_by_role("textbox", name="New title")
    expect(title_box).to_be_focused()
    title_box.fill("Talks slowly")
    title_box.press("Enter")
    expect(chat.convo("Talks slowly")).to_be_visible()
    expect(chat.title).to_have_text("Talks slowly")
    [stored] = librechat.state.chat.conversations_of(user.librechat_user_id)
    assert stored["conversationId"] == conversation_id
    assert stored["title"] == "Talks slowly"

    page.get_by_role("button", name="Delete “Talks slowly”").click()
    dialog = page.get_by_role("dialog", name="Delete conversation?")
    expect(dialog).to_contain_text("Talks slowly")
    dialog.get_by_role("button", name="Delete").click()
    expect(chat.convo("Talks slowly")).to_have_count(0)
    expect(page.get_by_text("No conversations yet.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    assert librechat.state.chat.conversations_of(user.librechat_user_id) == []


def test_a_running_answer_resumes_after_a_reload(
    page: Page, fast_librechat: LibreChatDouble, alice: User
) -> None:
    fast_librechat.config.update(fake_slow_token_count=SLOW_WORDS, fake_slow_token_delay_s=0.15)
    chat = open_chat(page, alice.email)
    chat.ask("SLOW resume test.")
    expect(chat.answer_text()).to_contain_text("w03")
    page.reload()  # the tab goes away mid-answer; LibreChat keeps generating

    expect(page).to_have_url(CONVERSATION_URL)
    expect(chat.answer()).to_have_attribute("aria-busy", "true")  # resumed, still streaming
    expect(chat.stop).to_be_visible()
    expect(chat.answer_text()).to_contain_text("w03")  # the `sync` snapshot, then more
    mid = chat.answer_text().inner_text()
    assert "w03" in mid
    assert "w20" not in mid
    chat.finished()
    # The snapshot (`sync`) and the live deltas join without gaps or repeats.
    expect(chat.answer_text()).to_have_text(slow_words())
    expect(chat.convo("Fake Chat Title")).to_be_visible()
    assert fast_librechat.state.counter("generations_completed") == 1


UNREACHABLE = json.dumps(
    {"error": {"code": "librechat_unreachable", "message": "LibreChat is unreachable."}}
)
STREAM = re.compile(r"/api/chat/agents/chat/stream/")


def test_a_resume_that_finds_librechat_gone_keeps_the_banner_until_a_retry_works(
    page: Page, fast_librechat: LibreChatDouble, alice: User
) -> None:
    fast_librechat.config.update(fake_slow_token_count=SLOW_WORDS, fake_slow_token_delay_s=0.3)
    chat = open_chat(page, alice.email)
    chat.ask("SLOW resume while the stream fails.")
    expect(chat.answer_text()).to_contain_text("w02")
    page.route(
        STREAM,
        lambda route: route.fulfill(status=502, content_type="application/json", body=UNREACHABLE),
    )
    page.reload()  # the page loads; the resumed stream then answers 502 librechat_unreachable

    expect(chat.answer()).to_contain_text("The chat service went away while answering.")
    expect(chat.unreachable_banner).to_be_visible()
    expect(chat.prompt).to_be_disabled()
    expect(chat.send).to_be_disabled()

    # Back: "Retry now" hides the banner as soon as the page has loaded, not at the end of the
    # resumed answer.
    page.unroute(STREAM)
    page.get_by_role("button", name="Retry now").click()
    expect(chat.unreachable_banner).to_be_hidden()
    expect(chat.answer()).to_have_attribute("aria-busy", "true")
    expect(chat.stop).to_be_visible()
    assert fast_librechat.state.chat.active_job_ids(), "the answer should still be running"
    chat.finished()
    expect(chat.answer_text()).to_have_text(slow_words())
    expect(chat.unreachable_banner).to_be_hidden()


def sse(data: dict[str, Any]) -> str:
    return f"event: message\ndata: {json.dumps(data)}\n\n"


def delta(step: str, text: str) -> dict[str, Any]:
    return {
        "event": "on_message_delta",
        "data": {"id": step, "delta": {"content": [{"type": "text", "text": text}]}},
    }


def test_a_resume_applies_the_sync_events_pending_events(
    page: Page, fast_librechat: LibreChatDouble, alice: User
) -> None:
    """LibreChat's `sync` carries `pendingEvents` (emitted between its snapshot and our
    subscription; always empty in the double, whose snapshot and subscription are atomic): they
    are applied like live events, in order, between the snapshot and the live deltas. The stream
    is fed by the test and ends without `final`, so what is asserted is the live view."""
    conversation_id = str(uuid.uuid4())
    fast_librechat.state.chat.save_convo(
        alice.librechat_user_id,
        conversation_id,
        {"title": "Resumed", "endpoint": "Fake", "model": "fake-model"},
    )
    question_id, answer_id, step = str(uuid.uuid4()), str(uuid.uuid4()), "step_pending"
    resume_state = {
        "runSteps": [{"stepIndex": 0, "id": step, "type": "message_creation", "index": 0}],
        "aggregatedContent": [{"type": "text", "text": "w01 w02"}],
        "userMessage": {
            "messageId": question_id,
            "parentMessageId": NO_PARENT,
            "conversationId": conversation_id,
            "text": "SLOW with a gap.",
        },
        "responseMessageId": answer_id,
        "conversationId": conversation_id,
        "sender": "Fake",
    }
    status = {
        "active": True,
        "streamId": conversation_id,
        "status": "running",
        "createdAt": 1795247102061,
        "resumeState": resume_state,
    }
    pending = [
        delta(step, " w03"),
        {"event": "title", "data": {"conversationId": conversation_id, "title": "From pending"}},
        delta(step, " w04"),
    ]
    body = sse({"sync": True, "resumeState": resume_state, "pendingEvents": pending}) + sse(
        delta(step, " w05")
    )
    page.route(
        f"**/api/chat/agents/chat/status/{conversation_id}",
        lambda route: route.fulfill(content_type="application/json", body=json.dumps(status)),
    )
    page.route(
        STREAM,
        lambda route: route.fulfill(content_type="text/event-stream", body=body),
    )
    log_in(page, alice.email, DEFAULT_PASSWORD, next_url=f"/chat/c/{conversation_id}/")
    chat = ChatPage(page)
    expect(chat.messages("user").get_by_test_id("message-content")).to_have_text("SLOW with a gap.")
    expect(chat.answer_text()).to_contain_text("w01 w02 w03 w04 w05")
    expect(chat.title).to_have_text("From pending")
    expect(chat.convo("From pending")).to_be_visible()
