"""The model menu offers only what the user can use: endpoints whose key LibreChat expects from
the user (`userProvide`, as with its .env.example's `OPENAI_API_KEY=user_provided`) are never
listed or preselected, and the last choice is remembered."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.chat.conftest import activate
from tests.factories import DEFAULT_PASSWORD
from tests.librechat_double.server import LibreChatDouble
from users.models import User

from .conftest import log_in
from .pages import ChatPage
from .test_chat_flow import sign_up

USER_PROVIDED = ("openAI", "anthropic", "google")


@pytest.fixture
def keyless_librechat(fast_librechat: LibreChatDouble) -> LibreChatDouble:
    """LibreChat set up from its .env.example: three providers whose key each user must give."""
    fast_librechat.config.update(
        user_provided_endpoints=USER_PROVIDED, fake_more_models=("fake-model-2",)
    )
    return fast_librechat


def chat_posts(librechat: LibreChatDouble) -> list[tuple[str, str]]:
    return [
        (r.path, r.json()["model"])
        for r in librechat.state.requests
        if r.method == "POST" and r.path.startswith("/api/agents/chat/") and r.path[-5:] != "abort"
    ]


def test_a_new_users_first_message_succeeds_beside_user_provided_endpoints(
    page: Page, keyless_librechat: LibreChatDouble
) -> None:
    librechat = keyless_librechat
    user = sign_up(page, "ada@example.com")
    activate(user, librechat)
    page.goto("/chat/")
    chat = ChatPage(page)
    chat.ready()
    # LibreChat lists them first (order 0, 5, 6), with models; the menu offers the usable
    # endpoint's models only, the first one chosen.
    assert librechat.state.requests_to("/api/endpoints")
    options = chat.model.locator("option")
    expect(options).to_have_text(["fake-model", "fake-model-2"])
    expect(chat.model).to_have_value("Fake\nfake-model")
    for model in ("gpt-5.5", "claude-opus-4-5", "gemini-2.5-pro"):
        expect(chat.model.locator("option", has_text=model)).to_have_count(0)

    chat.ask("Hello there")
    expect(chat.answer_text()).to_have_text("Hello from the fake model.")
    chat.finished()
    expect(chat.answer()).not_to_contain_text("no_user_key")
    assert chat_posts(librechat) == [("/api/agents/chat/Fake", "fake-model")]


def test_the_last_choice_is_remembered_and_a_hidden_one_never_restored(
    page: Page, keyless_librechat: LibreChatDouble, alice: User
) -> None:
    librechat = keyless_librechat
    log_in(page, alice.email, DEFAULT_PASSWORD)
    chat = ChatPage(page)
    chat.ready()
    chat.model.select_option("Fake\nfake-model-2")
    page.reload()
    chat.ready()
    expect(chat.model).to_have_value("Fake\nfake-model-2")
    chat.ask("Hello again")
    chat.finished()
    assert chat_posts(librechat) == [("/api/agents/chat/Fake", "fake-model-2")]

    # A choice saved before an endpoint turned user-provided is not restored.
    page.evaluate("localStorage.setItem('hestami.chat.model', 'openAI\\ngpt-5.5')")
    page.reload()
    chat.ready()
    expect(chat.model).to_have_value("Fake\nfake-model")
