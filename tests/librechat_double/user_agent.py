"""Does ua-parser-js (v1) find a browser name in a User-Agent? That is all uaParser.js asks.

Not a port of ua-parser-js: a short table of the browser families it recognises, enough to
classify real browsers and the HTTP libraries a backend uses. Two catch-alls matter most:
any `AppleWebKit/` or `KHTML/` token counts as a browser ("WebKit"), and so does
`Mozilla/x ... rv:... Gecko/<digits>`. A bare `Mozilla/5.0`, curl, python-requests,
python-httpx, okhttp, axios, node-fetch, Go-http-client and `App/1 CFNetwork/x Darwin/y`
(iOS networking) match nothing, so LibreChat treats them as non-browsers.
"""

from __future__ import annotations

import re

_BROWSER_PATTERNS: tuple[tuple[str, str], ...] = (
    # Names that embed a Chrome/Safari token come first, so the reported name is the specific one.
    ("Edge", r"edg(?:e|ios|a)?/[\w.]+"),
    (
        "Opera",
        r"\bopr/[\w.]+|opera(?: mini)?(?:.+version/|[/ ]+)[\w.]+|opios[/ ]+[\w.]+"
        r"|\bop(?:rg)?x/[\w.]+|\bopt/[\w.]+|coast/[\w.]+",
    ),
    ("Samsung Internet", r"samsungbrowser/[\w.]+"),
    ("Yandex", r"ya(?:search)?browser/[\w.]+"),
    ("UCBrowser", r"\buc? ?browser[/ ]?[\w.]+|juc.+ucweb"),
    ("WeChat", r"micromessenger/[\w.]+"),
    ("Facebook", r"fban/fbios|fb_iab/fb4a|;fbav/[\w.]+;"),
    (
        "Chromium-based",
        r"(?:vivaldi|brave|silk|puffin|midori|epiphany|falkon|qupzilla|iron|phantomjs|whale"
        r"|duckduckgo|chromium|instagram|snapchat|electron)[/ ][\w.]+",
    ),
    ("Chrome Headless", r"headlesschrome"),
    ("Chrome WebView", r" wv\).+chrome/[\w.]+"),
    ("Chrome", r"\b(?:crmo|crios)/[\w.]+|chrome/v?[\w.]+"),
    ("Firefox", r"firefox/[\w.]+|fxios/[\w.-]+"),
    ("IE", r"(?:ms|\()ie [\w.]+|trident.+rv[: ][\w.]{1,9}\b.+like gecko"),
    ("Konqueror", r"konqueror/[\w.]+"),
    ("Mobile Safari", r"version/[\w.,]+ .*mobile/\w+ safari"),
    ("Safari", r"version/[\w.,]+ .*(?:mobile ?safari|safari)|webkit.+?(?:mobile ?safari|safari)/"),
    ("WebKit", r"(?:webkit|khtml)/[\w.]+"),
    ("Mozilla", r"mozilla/[\w.]+ .+rv:.+gecko/\d+"),
    ("Text browser", r"(?:lynx|w3m|dillo|netsurf|amaya|icab)[-/ ]?v?[\w.]+|\blinks \([\w.]+"),
)

_COMPILED = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in _BROWSER_PATTERNS)


def browser_name(user_agent: str | None) -> str | None:
    """The browser family, or None when LibreChat would log a `non_browser` violation."""
    if not user_agent:
        return None
    for name, pattern in _COMPILED:
        if pattern.search(user_agent):
            return name
    return None
