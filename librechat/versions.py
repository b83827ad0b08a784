"""Which LibreChat release we sit in front of, and what that release does differently: the one
place that knows (docs/librechat-versions.md has the facts and their sources).

* ``PROFILES``: one frozen ``VersionProfile`` per release we support. Code that behaves
  differently per release asks the profile (``current().profile.chat_steer``), never compares
  version strings itself.
* ``LIBRECHAT_VERSION``: ``auto`` (the default) reads the release LibreChat reports in
  ``GET /api/config`` (``buildInfo``); ``0.8.7`` or ``0.8.8`` pins it (what to do when
  LibreChat does not report it: its image built without git metadata, or
  ``interface.buildInfo: false`` in librechat.yaml).
* ``current()``: the detection, cached per process for ``LIBRECHAT_VERSION_TTL_S`` (a failed
  or unreported one for a tenth of that, at most a minute), one fetch at a time.

A release newer than every profile gets the newest profile and a warning in the log; a release
that is not reported at all gets the oldest one (0.8.7): the routes a later release added stay
refused until an operator says which release runs, rather than being let through to a LibreChat
that would take ``steer`` for an endpoint name.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from librechat.auth import request_headers

logger = logging.getLogger(__name__)

AUTO = "auto"
# x.y.z, optionally a release candidate (0.8.9-rc1, 0.8.9-rc.1); a leading `v` is dropped.
VERSION_PATTERN = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-rc\.?(\d+))?")


@dataclass(frozen=True)
class VersionProfile:
    """What one LibreChat release does that matters to us."""

    version: str
    # ALLOW_EMAIL_LOGIN=false refuses POST /api/auth/login for local accounts (403 "Email login
    # is not allowed.") unless ALLOW_EMAIL_LOGIN_OVERRIDE=true; before, it only hid the form.
    email_login_gates_password_login: bool
    # A blank JWT_SECRET / JWT_REFRESH_SECRET is generated at start-up, per instance.
    generates_blank_jwt_secrets: bool
    # POST /api/agents/chat/steer and POST /api/agents/chat/resume exist.
    chat_steer: bool
    chat_resume: bool
    # The highest generation-control protocol it speaks (1: no negotiation).
    generation_protocol: int


PROFILES: dict[str, VersionProfile] = {
    profile.version: profile
    for profile in (
        VersionProfile(
            version="0.8.7",
            email_login_gates_password_login=False,
            generates_blank_jwt_secrets=False,
            chat_steer=False,
            chat_resume=False,
            generation_protocol=1,
        ),
        VersionProfile(
            version="0.8.8",
            email_login_gates_password_login=True,
            generates_blank_jwt_secrets=True,
            chat_steer=True,
            chat_resume=True,
            generation_protocol=2,
        ),
    )
}
OLDEST = PROFILES["0.8.7"]
NEWEST = PROFILES["0.8.8"]


@dataclass(frozen=True)
class Detected:
    """The profile in use; ``reported`` is the release LibreChat or the setting named (None:
    nobody did), ``source`` where that came from, ``note`` what an operator should know."""

    profile: VersionProfile
    reported: str | None
    source: str
    note: str = ""

    @property
    def version(self) -> str:
        return self.profile.version


def version_key(version: str) -> tuple[int, int, int, int]:
    """Sortable: 0.8.9-rc1 sorts after 0.8.8 and before 0.8.9."""
    match = VERSION_PATTERN.fullmatch(version.strip())
    if match is None:
        raise ValueError(f"not a LibreChat version: {version!r}")
    major, minor, patch, rc = match.groups()
    return int(major), int(minor), int(patch), int(rc) if rc is not None else 1_000_000


def normalized(version: str) -> str:
    """``v0.8.8`` → ``0.8.8``; ``0.8.9-rc.1`` → ``0.8.9-rc1``."""
    major, minor, patch, rc = version_key(version)
    base = f"{major}.{minor}.{patch}"
    return base if rc == 1_000_000 else f"{base}-rc{rc}"


def profile_for(version: str) -> tuple[VersionProfile, str]:
    """The profile of ``version`` and a note when it is not one we know: a newer release gets
    the newest profile, an older one the oldest."""
    name = normalized(version)
    if name in PROFILES:
        return PROFILES[name], ""
    key = version_key(name)
    if key > version_key(NEWEST.version):
        return NEWEST, (
            f"LibreChat {name} is newer than every release we know; treated as "
            f"{NEWEST.version} (docs/librechat-versions.md)."
        )
    known = [p for p in PROFILES.values() if version_key(p.version) <= key]
    if not known:
        return OLDEST, (
            f"LibreChat {name} is older than every release we support; treated as "
            f"{OLDEST.version}. Upgrade LibreChat (docs/librechat-versions.md)."
        )
    best = max(known, key=lambda p: version_key(p.version))
    return best, f"LibreChat {name} is not a release we know; treated as {best.version}."


def reported_version(config: Any) -> str | None:
    """The release a ``GET /api/config`` answer names, if any: ``buildInfo.version`` when
    present, else a version in ``buildInfo.branch`` (an image built from the tag ``v0.8.8``
    reports that as its branch). Anything malformed reads as "not reported"."""
    if not isinstance(config, dict):
        return None
    build = config.get("buildInfo")
    if not isinstance(build, dict):
        return None
    for field in ("version", "branch"):
        value = build.get(field)
        if not isinstance(value, str) or len(value) > 200:
            continue
        found = VERSION_PATTERN.search(value)
        if found is not None:
            return normalized(found.group(0))
    return None


def from_startup_config(config: Any) -> Detected:
    """What ``GET /api/config``'s answer says about the release."""
    version = reported_version(config)
    if version is None:
        return Detected(
            OLDEST,
            None,
            "not reported by /api/config",
            f"LibreChat does not report its release (no version in /api/config buildInfo); "
            f"assumed {OLDEST.version}. Set LIBRECHAT_VERSION to the release you run.",
        )
    profile, note = profile_for(version)
    return Detected(profile, version, "/api/config buildInfo", note)


def from_setting(value: str) -> Detected:
    profile, note = profile_for(value)
    return Detected(profile, normalized(value), "setting LIBRECHAT_VERSION", note)


def fetch_startup_config(*, timeout_s: float) -> Any:
    """LibreChat's anonymous ``GET /api/config`` as JSON. Raises httpx's errors and ValueError."""
    response = httpx.get(
        f"{settings.LIBRECHAT_API_URL}/api/config",
        headers=request_headers(None),
        timeout=httpx.Timeout(
            timeout_s, connect=min(timeout_s, settings.LIBRECHAT_CONNECT_TIMEOUT_S)
        ),
        follow_redirects=False,
    )
    if response.status_code != 200:
        raise ValueError(f"GET /api/config answered {response.status_code}")
    return response.json()


@dataclass
class _Cache:
    detected: Detected | None = None
    expires_at: float = 0.0
    setting: str = ""
    url: str = ""


_cache = _Cache()
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.detected = None
        _cache.expires_at = 0.0


def _cached() -> Detected | None:
    setting, url = str(settings.LIBRECHAT_VERSION), str(settings.LIBRECHAT_API_URL)
    if (
        _cache.detected is not None
        and _cache.setting == setting
        and _cache.url == url
        and time.monotonic() < _cache.expires_at
    ):
        return _cache.detected
    return None


def current() -> Detected:
    """The release in use (blocking: may ask LibreChat; see ``acurrent`` in async code)."""
    found = _cached()
    if found is not None:
        return found
    with _lock:
        found = _cached()
        if found is not None:
            return found
        setting, url = str(settings.LIBRECHAT_VERSION), str(settings.LIBRECHAT_API_URL)
        ttl = float(settings.LIBRECHAT_VERSION_TTL_S)
        if setting != AUTO:
            detected = from_setting(setting)
        else:
            detected = _detect()
            if detected.reported is None:
                ttl = min(ttl / 10, 60.0)  # ask again soon: LibreChat may be starting
        if detected.note:
            logger.warning("librechat version: %s", detected.note)
        _cache.detected, _cache.setting, _cache.url = detected, setting, url
        _cache.expires_at = time.monotonic() + ttl
        return detected


def _detect() -> Detected:
    try:
        return from_startup_config(
            fetch_startup_config(timeout_s=settings.LIBRECHAT_CONNECT_TIMEOUT_S)
        )
    except (httpx.HTTPError, ValueError) as exc:
        return Detected(
            OLDEST,
            None,
            "LibreChat unreachable",
            f"could not read LibreChat's release from /api/config ({type(exc).__name__}); "
            f"assumed {OLDEST.version} until it answers.",
        )


# One fetch per event loop at a time: requests that find the cache empty wait here, not each in
# a thread of the loop's executor (which reads request bodies too) blocked on ``_lock``.
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def acurrent() -> Detected:
    """``current()`` for async code: the cached answer at once, else one fetch in a thread."""
    found = _cached()
    if found is not None:
        return found
    async with _loop_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        found = _cached()
        if found is not None:
            return found
        return await asyncio.to_thread(current)
