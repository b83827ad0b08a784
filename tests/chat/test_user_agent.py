"""Our User-Agent is a browser for LibreChat's uaParser (ua-parser-js, as LibreChat pins it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.librechat_double.user_agent import browser_name

NPM_DIR = Path(__file__).parent / "npm"
NON_BROWSERS = [
    "okhttp/4.12.0",
    "python-httpx/0.28.1",
    "curl/8.5.0",
    "Hestami/1.0 CFNetwork/1490 Darwin/23.2.0",
]


@pytest.fixture(scope="module")
def classify() -> object:
    if not (NPM_DIR / "node_modules" / "ua-parser-js").exists():
        npm = shutil.which("npm")
        assert npm, "npm is required (Debian package npm/nodejs)"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=NPM_DIR,
            check=True,
            timeout=300,
        )

    def run(agents: list[str]) -> list[str]:
        result = subprocess.run(
            ["node", "classify.js"],
            cwd=NPM_DIR,
            input="\n".join(agents),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return list(json.loads(result.stdout))

    return run


def test_our_user_agent_is_a_browser_for_ua_parser_js(classify) -> None:
    [name] = classify([settings.LIBRECHAT_USER_AGENT])
    assert name == "Chrome"


def test_mobile_and_library_agents_are_not(classify) -> None:
    # The control: these would get a user and our IP banned, which is why we never forward them.
    assert classify(NON_BROWSERS) == [""] * len(NON_BROWSERS)


def test_the_double_agrees_with_ua_parser_js(classify) -> None:
    agents = [settings.LIBRECHAT_USER_AGENT, *NON_BROWSERS]
    assert [bool(name) for name in classify(agents)] == [bool(browser_name(a)) for a in agents]
