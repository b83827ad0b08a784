"""librechat/versions.py: which release we sit in front of, read from LibreChat's /api/config
(the double over real HTTP, for every release it serves) or pinned by LIBRECHAT_VERSION."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from librechat import versions
from tests.conftest import EVERY_RELEASE
from tests.helpers import ROOT
from tests.librechat_double.releases import RELEASES
from tests.librechat_double.server import LibreChatDouble


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"buildInfo": {"branch": "v0.8.8", "commit": "abc"}}, "0.8.8"),
        ({"buildInfo": {"branch": "release/v0.8.7"}}, "0.8.7"),
        ({"buildInfo": {"version": "0.8.9-rc.1", "branch": "main"}}, "0.8.9-rc1"),
        ({"buildInfo": {"version": 8, "branch": "v0.8.8"}}, "0.8.8"),
    ],
)
def test_the_release_is_read_from_build_info(config: dict[str, Any], expected: str) -> None:
    assert versions.reported_version(config) == expected


@pytest.mark.parametrize(
    "config",
    [
        None,
        [],
        "v0.8.8",
        {},
        {"buildInfo": "v0.8.8"},
        {"buildInfo": None},
        {"buildInfo": {"branch": "main", "commit": "0f8c2d4"}},
        {"buildInfo": {"branch": 88}},
        {"buildInfo": {"branch": "x" * 300 + "v0.8.8"}},
        {"buildInfo": {"branch": "v0.8"}},
    ],
)
def test_malformed_or_silent_config_reports_no_release(config: Any) -> None:
    assert versions.reported_version(config) is None
    detected = versions.from_startup_config(config)
    # Not reported: the oldest release, so later routes stay refused until someone says.
    assert (detected.profile, detected.reported) == (versions.OLDEST, None)
    assert "LIBRECHAT_VERSION" in detected.note


def test_unknown_releases_map_to_the_nearest_profile() -> None:
    newer, note = versions.profile_for("v0.9.1")
    assert newer is versions.NEWEST
    assert "newer than every release we know" in note
    rc, note = versions.profile_for("0.8.9-rc2")
    assert rc is versions.NEWEST
    assert "0.8.9-rc2" in note
    older, note = versions.profile_for("0.8.6")
    assert older is versions.OLDEST
    assert "Upgrade LibreChat" in note
    assert versions.profile_for("0.8.8") == (versions.PROFILES["0.8.8"], "")
    with pytest.raises(ValueError, match="not a LibreChat version"):
        versions.profile_for("latest")


def test_release_candidates_sort_between_releases() -> None:
    keys = [versions.version_key(v) for v in ("0.8.7", "0.8.8", "0.8.9-rc1", "0.8.9-rc2", "0.8.9")]
    assert keys == sorted(keys)


def test_the_profiles_say_what_changed_in_0_8_8() -> None:
    old, new = versions.PROFILES["0.8.7"], versions.PROFILES["0.8.8"]
    assert not (old.chat_steer)
    assert not (old.chat_resume)
    assert not (old.email_login_gates_password_login)
    assert new.chat_steer
    assert new.chat_resume
    assert new.email_login_gates_password_login
    assert (old.generation_protocol, new.generation_protocol) == (1, 2)
    assert new.generates_blank_jwt_secrets
    assert not old.generates_blank_jwt_secrets


def test_auto_reads_the_release_librechat_reports(
    librechat: LibreChatDouble, librechat_version: str
) -> None:
    detected = versions.current()
    assert (detected.version, detected.reported) == (librechat_version, librechat_version)
    assert detected.source == "/api/config buildInfo"
    assert [r.path for r in librechat.state.requests] == ["/api/config"]


def test_the_answer_is_cached_until_cleared(librechat: LibreChatDouble) -> None:
    first = versions.current()
    librechat.config.update(version="0.8.7" if first.version == "0.8.8" else "0.8.8")
    assert versions.current() is first
    assert len(librechat.state.requests) == 1  # asked once
    versions.clear_cache()
    assert versions.current().version != first.version


def test_the_cache_ends_with_its_ttl(librechat: LibreChatDouble, settings: Any) -> None:
    settings.LIBRECHAT_VERSION_TTL_S = 0.0
    versions.current()
    versions.current()
    assert len(librechat.state.requests) == 2


def test_a_build_without_build_info_is_assumed_oldest(
    librechat: LibreChatDouble, caplog: pytest.LogCaptureFixture
) -> None:
    librechat.config.update(build_branch="")
    with caplog.at_level(logging.WARNING, logger="librechat.versions"):
        detected = versions.current()
    assert detected.profile is versions.OLDEST
    assert detected.reported is None
    assert "does not report its release" in caplog.text


def test_a_newer_release_gets_the_newest_profile_and_a_warning(
    librechat: LibreChatDouble, caplog: pytest.LogCaptureFixture
) -> None:
    librechat.config.update(build_branch="v0.9.0")
    with caplog.at_level(logging.WARNING, logger="librechat.versions"):
        detected = versions.current()
    assert (detected.profile, detected.reported) == (versions.NEWEST, "0.9.0")
    assert "0.9.0 is newer than every release we know" in caplog.text


def test_the_setting_wins_over_what_librechat_says(
    librechat: LibreChatDouble, settings: Any
) -> None:
    settings.LIBRECHAT_VERSION = "0.8.7"
    detected = versions.current()
    assert (detected.version, detected.source) == ("0.8.7", "setting LIBRECHAT_VERSION")
    assert librechat.state.requests == []  # not asked


def test_an_unreachable_or_broken_librechat_is_assumed_oldest(
    librechat: LibreChatDouble, settings: Any
) -> None:
    librechat.set_mode("error500", path_prefix="/api/config")
    detected = versions.current()
    assert (detected.profile, detected.source) == (versions.OLDEST, "LibreChat unreachable")
    assert "ValueError" in detected.note
    settings.LIBRECHAT_API_URL = "http://127.0.0.1:9"
    unreachable = versions.current()  # asked anew (another URL), not the cached answer
    assert unreachable.source == "LibreChat unreachable"
    assert "ConnectError" in unreachable.note


def test_acurrent_answers_from_the_cache(librechat: LibreChatDouble) -> None:
    async def twice() -> tuple[versions.Detected, versions.Detected]:
        return await versions.acurrent(), await versions.acurrent()

    first, second = asyncio.run(twice())
    assert second is first
    assert len(librechat.state.requests) == 1


def test_concurrent_requests_on_an_empty_cache_wait_for_one_fetch(
    librechat: LibreChatDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not one executor thread each, blocked on the fetch of the first."""
    fetches: list[int] = []
    fetch = versions.current

    def counted() -> versions.Detected:
        fetches.append(1)
        return fetch()

    monkeypatch.setattr(versions, "current", counted)

    async def many() -> list[versions.Detected]:
        return list(await asyncio.gather(*(versions.acurrent() for _ in range(20))))

    answers = asyncio.run(many())
    assert len(fetches) == 1
    assert {id(answer) for answer in answers} == {id(answers[0])}
    assert len(librechat.state.requests) == 1


def test_the_every_release_list_names_real_tests() -> None:
    """A renamed test would silently drop out of tests/conftest.py's EVERY_RELEASE."""
    for entry in EVERY_RELEASE:
        module, _, name = entry.partition("::")
        source = (ROOT / module).read_text()
        assert "librechat" in source, entry
        if name:
            assert f"def {name}(" in source, entry
    assert tuple(versions.PROFILES) == RELEASES  # the double serves every release we support
