"""Static files in development (DEBUG: ServeStatic autorefreshes from the finders) still serve,
and every other request skips the lookup, so the chat proxy costs in development what it costs
in production (bench/proxy.py --debug measures it)."""

from __future__ import annotations

from typing import Any

import pytest
import servestatic.base
from django.test import Client, override_settings


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    looked_up: list[str] = []
    original = servestatic.base.ServeStaticBase.find_file

    def find_file(self: Any, url: str) -> Any:
        looked_up.append(url)
        return original(self, url)

    monkeypatch.setattr(servestatic.base.ServeStaticBase, "find_file", find_file)
    return looked_up


@override_settings(SERVESTATIC_AUTOREFRESH=True, SERVESTATIC_USE_FINDERS=True)
@pytest.mark.django_db
def test_autorefresh_looks_up_static_paths_only(lookups: list[str]) -> None:
    client = Client()
    css = client.get("/static/hestami_ai/site.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert client.get("/api/chat/convos").status_code == 401  # reached the proxy view
    assert client.get("/accounts/login/").status_code == 200
    assert lookups == ["/static/hestami_ai/site.css"]
