"""The chat page as the tests see it: locators by role and label, as a keyboard or screen-reader
user would find them."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

SLOW_WORDS = 20


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.prompt = page.get_by_role("textbox", name="Message", exact=True)
        self.send = page.get_by_role("button", name="Send", exact=True)
        self.stop = page.get_by_role("button", name="Stop generating")
        self.model = page.get_by_label("Model")
        self.sidebar = page.get_by_role("navigation", name="Conversation list")
        self.title = page.locator("#chat-title")
        self.provisioning_banner = page.locator("#banner-provisioning")
        self.unreachable_banner = page.locator("#banner-unreachable")
        self.log = page.get_by_role("log", name="Messages")

    def ready(self) -> None:
        """Models loaded: the composer can be used."""
        expect(self.model).to_be_enabled()
        expect(self.prompt).to_be_enabled()

    def ask(self, text: str) -> None:
        self.prompt.fill(text)
        self.prompt.press("Enter")

    def messages(self, role: str) -> Locator:
        return self.page.locator(f"article[data-role={role}]")

    def answer(self) -> Locator:
        return self.messages("assistant").last

    def answer_text(self) -> Locator:
        return self.answer().get_by_test_id("message-content")

    def convo(self, title: str) -> Locator:
        return self.sidebar.get_by_role("link", name=title, exact=True)

    def finished(self) -> None:
        expect(self.answer()).to_have_attribute("aria-busy", "false")
        expect(self.prompt).to_be_enabled()


def slow_words(count: int = SLOW_WORDS) -> str:
    return " ".join(f"w{i:02d}" for i in range(1, count + 1))
