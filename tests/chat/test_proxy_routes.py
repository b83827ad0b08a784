"""Deny by default, on the path as Express would route it: no spelling of a LibreChat route outside
the allowlist reaches LibreChat, and what does reach it is byte for byte the path checked.

Against the double, which routes like Express (tests/librechat_double/express.py), with requests
written byte for byte (tests.helpers.RawHttp): httpx would resolve `./` before sending.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chat import policy
from tests.chat.conftest import AppServer, jwt_for
from tests.chat.librechat_routes import ROUTES, with_samples
from tests.helpers import RawHttp
from tests.librechat_double.server import LibreChatDouble
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

# Letters and what passes for them: Cyrillic, the Kelvin sign and the long s (which Unicode
# case-folds to k and s), dotless i, fullwidth forms.
LOOK_ALIKES = {
    "a": ["\u0430", "\uff41"],
    "c": ["\u0441"],
    "e": ["\u0435"],
    "i": ["\u0131", "\u0456"],
    "k": ["\u212a"],
    "o": ["\u043e", "\u03bf"],
    "p": ["\u0440"],
    "s": ["\u017f", "\u0455"],
    "u": ["\uff55"],
}


def allowed(method: str, path: str) -> bool:
    return any(r.method == method and r.path == path for r in policy.ROUTES)


REFUSED = [(m, p) for m, p in ROUTES if not allowed(m, p)]


def percent(text: str, *, lower: bool = False) -> str:
    escaped = "".join(f"%{byte:02X}" for byte in text.encode())
    return escaped.lower() if lower else escaped


def spellings(path: str) -> Iterator[str]:
    """Ways to write `/<path>` (after /api/chat) that a lax server, client or proxy might take for
    it: letter case, dot segments, empty segments, percent-encoding of any one character, a
    trailing slash, `;` parameters, backslashes, NUL, Unicode look-alikes."""
    base = "/" + path
    segments = path.split("/")
    yield base
    yield base.upper()
    yield base.title()
    yield "".join(c.upper() if i % 2 else c for i, c in enumerate(base))
    yield base + "/"
    yield base.upper() + "/"
    yield "/." + base
    yield "/./" + path + "/."
    yield "/" + "/./".join(segments)
    yield "/" + "/".join([*segments[:-1], "x", "..", segments[-1]])
    yield "/convos/../" + path
    yield "/convos/%2e%2e/" + path
    yield "/convos/%2E%2E/" + path
    yield "/%2e/" + path
    yield "//" + path
    yield "/" + "//".join(segments)
    yield base + "//"
    for index, character in enumerate(base):
        if character != "/":
            yield base[:index] + percent(character) + base[index + 1 :]
    yield "/" + percent(segments[0][0], lower=True) + base[2:]
    yield "/" + "/".join([percent(segments[0]), *segments[1:]])  # a whole segment encoded
    yield "/" + "%2F".join(segments)
    yield "/" + "%2f".join(segments)
    yield "/" + "\\".join(segments)
    yield "/" + "%5C".join(segments)
    yield base + ";x=1"
    yield "/" + segments[0] + ";jsessionid=1/" + "/".join(segments[1:])
    yield base + "%00"
    yield base + "%3B"
    for index, character in enumerate(base):
        for look_alike in LOOK_ALIKES.get(character.lower(), []):
            written = base[:index] + look_alike + base[index + 1 :]
            yield written  # raw UTF-8 on the wire
            yield base[:index] + percent(look_alike) + base[index + 1 :]


def test_the_allowlist_is_made_of_librechat_routes() -> None:
    missing = [(r.method, r.path) for r in policy.ROUTES if (r.method, r.path) not in ROUTES]
    assert missing == []
    assert len(REFUSED) > 100


def test_no_spelling_of_a_route_outside_the_allowlist_reaches_librechat(
    app_server: AppServer, librechat: LibreChatDouble, alice: User
) -> None:
    headers = {"Authorization": f"Bearer {jwt_for(alice)}", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    tried = 0
    with RawHttp(app_server.url) as http:
        for method, path in REFUSED:
            for spelling in spellings(with_samples(path)):
                status, body = http.request(
                    method, "/api/chat" + spelling, body=b"{}", headers=headers
                )
                assert status in (400, 403, 404), (method, spelling, status, body[:200])
                statuses[status] = statuses.get(status, 0) + 1
                tried += 1
    # Nothing reached LibreChat: no route, and not even the log-in that opens a session.
    assert librechat.state.requests == []
    assert tried > 5000
    assert statuses[400] > 1000
    assert statuses[403] > 1000


ODD_ID = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"


@pytest.mark.parametrize(
    ("method", "written", "canonical"),
    [
        ("GET", "/Convos/?limit=5&search=a%20b", "/api/convos?limit=5&search=a%20b"),
        ("GET", "/%63onvos", "/api/convos"),
        ("GET", f"/CONVOS/{ODD_ID}", f"/api/convos/{ODD_ID}"),
        ("GET", f"/Messages/{ODD_ID}/", f"/api/messages/{ODD_ID}"),
        ("GET", f"/messages?conversationId={ODD_ID}", f"/api/messages?conversationId={ODD_ID}"),
        (
            "GET",
            f"/Files/Download/65A0B1c2d3e4f5a6b7c8d9E0/{ODD_ID}",
            f"/api/files/download/65A0B1c2d3e4f5a6b7c8d9E0/{ODD_ID}",
        ),
        (
            "GET",
            "/files/CODE/download/SeSsIoN0123456789abcd/FiLe0123456789abcdefg",
            "/api/files/code/download/SeSsIoN0123456789abcd/FiLe0123456789abcdefg",
        ),
        ("GET", f"/Agents/Chat/Status/{ODD_ID}", f"/api/agents/chat/status/{ODD_ID}"),
        ("POST", "/Agents/Chat/%46ake", "/api/agents/chat/Fake"),
        ("POST", "/agents/chat/Mistral%20AI", "/api/agents/chat/Mistral%20AI"),
        ("POST", "/AGENTS/CHAT/ABORT/", "/api/agents/chat/abort"),
    ],
)
def test_librechat_gets_exactly_the_path_that_was_checked(
    app_server: AppServer,
    librechat: LibreChatDouble,
    librechat_version: str,
    alice: User,
    method: str,
    written: str,
    canonical: str,
) -> None:
    path, _, query = written.partition("?")
    assert (
        policy.resolve(method, path, version=librechat_version).path == canonical.partition("?")[0]
    )
    headers = {"Authorization": f"Bearer {jwt_for(alice)}", "Content-Type": "application/json"}
    with RawHttp(app_server.url) as http:
        status, body = http.request(method, "/api/chat" + written, body=b"{}", headers=headers)
    assert status < 500, body
    [forwarded] = [r for r in librechat.state.requests if r.raw_path != "/api/auth/login"]
    assert (forwarded.method, forwarded.raw_path, forwarded.query) == (
        method,
        canonical.partition("?")[0],
        query,
    )
