"""Files in real Chromium: an upload through the proxy and back, and the code tool's image shown
inline and downloaded (object URLs revoked late, so Chrome's download finds its bytes)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.librechat_double.fake_model import PLOT_PNG
from tests.librechat_double.server import LibreChatDouble
from users.models import User

from .conftest import open_chat

CSV = b"x,y\n1,2\n3,4\n"
# Records every object URL the page creates and revokes.
WATCH_OBJECT_URLS = """
const create = URL.createObjectURL.bind(URL);
const revoke = URL.revokeObjectURL.bind(URL);
window.objectUrls = { created: [], revoked: [] };
URL.createObjectURL = (object) => {
  const url = create(object);
  window.objectUrls.created.push(url);
  return url;
};
URL.revokeObjectURL = (url) => {
  window.objectUrls.revoked.push(url);
  revoke(url);
};
"""


def test_an_attachment_goes_up_and_comes_back(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    chat = open_chat(page, alice.email)
    page.locator("#file-input").set_input_files(
        {"name": "data.csv", "mimeType": "text/csv", "buffer": CSV}
    )
    chip = page.get_by_test_id("attachment-chip")
    expect(chip).to_have_attribute("data-status", "ready")
    expect(chip).to_contain_text("data.csv")
    chat.ask("Here is my data.")
    chat.finished()
    expect(page.get_by_test_id("attachment-chip")).to_have_count(0)
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    [question, _answer] = fast_librechat.state.chat.get_messages(
        alice.librechat_user_id, conversation_id
    )
    assert [f["filename"] for f in question["files"]] == ["data.csv"]
    assert fast_librechat.state.counter("uploads") == 1

    page.reload()
    button = chat.messages("user").get_by_role("button", name="Download data.csv")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "data.csv"
    assert download.failure() is None
    assert Path(download.path()).read_bytes() == CSV


LOAD_IMAGE = """(url) => new Promise((resolve, reject) => {
  const img = new Image();
  img.onload = () => resolve(img.naturalWidth);
  img.onerror = () => reject(new Error(`${url} did not load`));
  img.src = url;
})"""


def test_a_code_output_image_is_shown_and_downloads(
    page: Page, alice: User, fast_librechat: LibreChatDouble
) -> None:
    page.add_init_script(WATCH_OBJECT_URLS)
    chat = open_chat(page, alice.email)
    page.get_by_label("Run code").check()
    chat.ask("RUNCODE: compute 6*7 and plot it.")
    chat.finished()
    answer = chat.answer()
    expect(chat.answer_text()).to_contain_text("The code ran and printed 42.")
    tool = answer.get_by_test_id("tool-call")
    expect(tool).to_contain_text("Ran bash_tool")
    tool.locator("summary").click()
    expect(tool).to_contain_text("python3 -c 'print(6*7)'")
    expect(tool.locator(".tool-output")).to_contain_text("42")

    image = answer.get_by_role("img", name="plot.png")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 4", arg=image.element_handle()
    )
    with page.expect_download() as info:
        answer.get_by_role("button", name="Download plot.png").click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == "plot.png"
    assert Path(download.path()).read_bytes() == PLOT_PNG
    # The download's object URL outlives the click (revoked a minute later, files.js): LibreChat's
    # UI revokes it at once, and Chrome may then find nothing to save.
    urls = page.evaluate("window.objectUrls")
    assert len(urls["created"]) == 2  # the inline image, then the download
    assert urls["revoked"] == []
    # Still alive: it loads as an image (the page's CSP lets blob: URLs into img-src only).
    assert page.evaluate(LOAD_IMAGE, urls["created"][1]) == 4

    page.reload()  # from the stored message's attachments this time
    image = chat.answer().get_by_role("img", name="plot.png")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 4", arg=image.element_handle()
    )
