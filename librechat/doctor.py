"""Does LibreChat itself suit us? The doctor's checks of LibreChat's own configuration:
reachable, registration and e-mail verification (its start-up configuration), per-IP limits and
TRUST_PROXY, the clock. Registered by users (users/apps.py); the frame is core/doctor.py.

The probes are few and chosen never to cost a real deployment anything: they come from
documentation addresses (librechat/probe.py), so only when LibreChat wrongly keys on our own
address (the TRUST_PROXY failure this finds) do the log-in probes (three then) count against us,
and the registration probe is not sent; the log-in probe has no credentials (``Missing
credentials``: no password check, no account); the registration probe fails validation (no
account is created).
"""

from __future__ import annotations

import email.utils
import json
import math
from typing import Any

import httpx
from django.conf import settings

from core.doctor import Doctor, Finding, number, skipped, without_credentials
from librechat.probe import Answer, Prober, RateLimit, parse_rate, parse_rate_limit

CLOCK_WARN_S = 5.0
TITLES = {
    "reachable": "LibreChat reachable",
    "registration": "Registration enabled",
    "email_verification": "E-mail verification",
    "client_ip": "Per-user addresses (TRUST_PROXY)",
    "login_limit": "Log-in limit per address",
    "register_limit": "Registration limit per address",
    "clock": "Clock skew",
}


def prober(doctor: Doctor) -> Prober:
    """The run's one client to LibreChat, shared by every app's checks."""
    return doctor.shared(Prober, lambda: Prober(timeout_s=doctor.timeout_s))


def librechat_checks(doctor: Doctor) -> list[Finding]:
    """Reachable first; LibreChat's configuration only when it answers."""
    probe = prober(doctor)
    reachable = check_reachable(probe)
    probe.reachable = reachable.status != "FAIL"
    if not probe.reachable:
        why = "LibreChat is unreachable."
        return [
            reachable,
            *(
                skipped(name, TITLES[name], why)
                for name in (
                    "registration",
                    "email_verification",
                    "client_ip",
                    "login_limit",
                    "register_limit",
                )
            ),
        ]
    return [reachable, *check_startup_config(probe), *check_limits(probe)]


def clock_checks(doctor: Doctor) -> list[Finding]:
    return [check_clock(prober(doctor))]


def check_reachable(probe: Prober) -> Finding:
    title = "LibreChat reachable"
    if not probe.base_url:
        return Finding(
            "reachable",
            title,
            "FAIL",
            "LIBRECHAT_API_URL is not set.",
            "Set LIBRECHAT_API_URL to LibreChat's origin, e.g. http://librechat:3080.",
        )
    where = without_credentials(probe.base_url)
    try:
        answer = probe.call("GET", f"{probe.base_url}/readyz")
        if answer.status == 404:  # a LibreChat without /readyz
            answer = probe.call("GET", f"{probe.base_url}/health")
    except httpx.HTTPError as exc:
        return Finding(
            "reachable",
            title,
            "FAIL",
            f"{where} is unreachable from here ({type(exc).__name__}).",
            f"Check LIBRECHAT_API_URL ({where}), that LibreChat runs, and that this host "
            f"reaches it: curl {where}/health",
        )
    probe.readyz = answer
    took = round((answer.received_at - answer.sent_at) * 1000)
    if answer.status == 200:
        return Finding("reachable", title, "OK", f"{where}/readyz answered 200 in {took} ms.")
    if answer.status == 503:
        return Finding(
            "reachable",
            title,
            "WARN",
            f"{where} is up but not ready (/readyz answered 503 {answer.text.strip()[:40]}).",
            "Wait for LibreChat's start-up (migrations, MCP servers) to finish; if it never "
            "does, read LibreChat's log.",
        )
    return Finding(
        "reachable",
        title,
        "FAIL",
        f"{where}/readyz answered {answer.status}: this does not look like LibreChat.",
        "Point LIBRECHAT_API_URL at LibreChat's own origin (no path), e.g. http://librechat:3080.",
    )


def check_startup_config(probe: Prober) -> list[Finding]:
    try:
        answer = probe.call("GET", f"{probe.base_url}/api/config")
        config = json.loads(answer.text) if answer.status == 200 else None
    except (httpx.HTTPError, ValueError):
        config = None
    if not isinstance(config, dict):
        why = "GET /api/config did not answer with LibreChat's start-up configuration."
        return [
            skipped("registration", TITLES["registration"], why),
            skipped("email_verification", TITLES["email_verification"], why),
        ]
    return [_registration(config), _email_verification(config)]


def _registration(config: dict[str, Any]) -> Finding:
    title = "Registration enabled"
    ldap = config.get("ldap")
    if isinstance(ldap, dict) and ldap.get("enabled"):
        return Finding(
            "registration",
            title,
            "FAIL",
            "LibreChat authenticates against LDAP, which turns local registration off: "
            "provisioning cannot create accounts.",
            "Unset LDAP_URL and LDAP_USER_SEARCH_BASE in LibreChat's .env (we own the "
            "identities and register every user ourselves).",
        )
    if not config.get("registrationEnabled"):
        return Finding(
            "registration",
            title,
            "FAIL",
            "LibreChat refuses registrations (registrationEnabled is false): every "
            "provisioning run ends 'failed' with 'Registration is not allowed.'",
            "Set ALLOW_REGISTRATION=true in LibreChat's .env (exactly 'true') and restart "
            "it. Our proxy refuses /api/auth/*, so users can only register through us.",
        )
    minimum = config.get("minPasswordLength")
    if isinstance(minimum, int) and minimum > settings.LIBRECHAT_PASSWORD_LENGTH:
        return Finding(
            "registration",
            title,
            "FAIL",
            f"LibreChat wants passwords of at least {minimum} characters; we generate "
            f"{settings.LIBRECHAT_PASSWORD_LENGTH}.",
            f"Set MIN_PASSWORD_LENGTH to {settings.LIBRECHAT_PASSWORD_LENGTH} or less in "
            "LibreChat's .env.",
        )
    return Finding("registration", title, "OK", "LibreChat accepts registrations.")


def _email_verification(config: dict[str, Any]) -> Finding:
    title = "E-mail verification"
    if config.get("emailEnabled"):
        return Finding(
            "email_verification",
            title,
            "WARN",
            "LibreChat sends e-mail, so new accounts must verify their address before they "
            "can log in, unless ALLOW_UNVERIFIED_EMAIL_LOGIN=true (not visible from here); "
            "otherwise provisioning fails with 'Email not verified.'",
            "Set ALLOW_UNVERIFIED_EMAIL_LOGIN=true in LibreChat's .env (we verify addresses "
            "ourselves), or remove its e-mail settings.",
        )
    return Finding(
        "email_verification",
        title,
        "OK",
        "LibreChat has no e-mail configured: new accounts can log in at once.",
    )


def check_limits(probe: Prober) -> list[Finding]:
    if not settings.LIBRECHAT_FORWARD_CLIENT_IP:
        why = "LIBRECHAT_FORWARD_CLIENT_IP is off, so there is no per-user address to check."
        return [
            Finding(
                "client_ip",
                "Per-user addresses (TRUST_PROXY)",
                "FAIL",
                "LIBRECHAT_FORWARD_CLIENT_IP is off: LibreChat sees every user as our "
                "address, so one user's log-ins, registrations and bans count for all.",
                "Set LIBRECHAT_FORWARD_CLIENT_IP=true (and TRUST_PROXY in LibreChat to 1 + "
                "the number of reverse proxies between us and LibreChat).",
            ),
            skipped("login_limit", TITLES["login_limit"], why),
            skipped("register_limit", TITLES["register_limit"], why),
        ]
    url = f"{probe.base_url}/api/auth/login"
    try:
        first = probe.call("POST", url, probe_ip=probe.probe_ip(), json={})
        first_limit = parse_rate_limit(first)
        later: list[RateLimit | None] = []
        # A second address whose counter is fresh proves LibreChat counts addresses apart
        # (one shared counter would already show the first probe). A third settles the rare
        # case of a documentation address used by an earlier run in the same window.
        usable = first.status not in (403, 429) and first_limit is not None
        while usable and first_limit is not None and len(later) < 2:
            found = parse_rate_limit(probe.call("POST", url, probe_ip=probe.probe_ip(), json={}))
            later.append(found)
            if found is None or found.remaining in (first_limit.limit - 1, 0):
                break
    except httpx.HTTPError as exc:
        why = f"The log-in probe failed ({type(exc).__name__})."
        return [skipped(n, TITLES[n], why) for n in ("client_ip", "login_limit", "register_limit")]
    client_ip = _client_ip_finding(first, first_limit, later)
    login = _limit_finding(
        "login_limit",
        "Log-in limit per address",
        first_limit,
        ours=settings.THROTTLE_RATES["login_ip"],
        our_setting="THROTTLE_LOGIN_IP",
        their_max="LOGIN_MAX",
        their_window="LOGIN_WINDOW",
        why="each log-in we accept can make us open a LibreChat session",
    )
    if client_ip.status != "OK":
        register = skipped(
            "register_limit",
            TITLES["register_limit"],
            "Not probed: LibreChat does not key its limits on the address we forward, so "
            "the probe would spend a registration of every user's.",
        )
    else:
        register = _register_limit(probe)
    return [client_ip, login, register]


def _client_ip_finding(
    first: Answer, first_limit: RateLimit | None, later: list[RateLimit | None]
) -> Finding:
    check, title = "client_ip", "Per-user addresses (TRUST_PROXY)"
    fix = (
        "Set TRUST_PROXY in LibreChat's .env to 1 + the number of reverse proxies between "
        "us and LibreChat (1 when we call it directly, 2 through one nginx) and restart it."
    )
    if first.status == 429:
        return Finding(
            check,
            title,
            "FAIL",
            "LibreChat refused a log-in probe from a fresh address with 429: it counts every "
            "user as one address, and that address is out of log-ins right now.",
            fix,
        )
    if first.status == 403:
        return Finding(
            check,
            title,
            "FAIL",
            "LibreChat answered a log-in probe from a fresh address with 403 (banned): it "
            "keys bans on an address that is not the user's (ours or a proxy's).",
            fix + " Then lift the ban (or wait BAN_DURATION).",
        )
    if first_limit is None or not later or any(r is None for r in later):
        return Finding(
            check,
            title,
            "WARN",
            "LibreChat sent no rate-limit headers on /api/auth/login, so whether it keys its "
            "per-IP limits on the address we forward could not be observed.",
            "Check that no proxy in front of LibreChat strips X-RateLimit-* headers, and "
            "set TRUST_PROXY by hand: " + fix,
        )
    remaining = [first_limit.remaining, *(r.remaining for r in later if r is not None)]
    if first_limit.limit - 1 in remaining[1:]:
        return Finding(
            check,
            title,
            "OK",
            "Probes with different X-Forwarded-For addresses were counted separately: "
            "LibreChat keys its limits and bans on the address we forward.",
        )
    return Finding(
        check,
        title,
        "FAIL",
        "Probes with different X-Forwarded-For addresses were counted as one address "
        f"(remaining {', then '.join(map(str, remaining))}): LibreChat's per-IP limits and "
        "bans hit all our users at once.",
        fix,
    )


def _register_limit(probe: Prober) -> Finding:
    try:
        answer = probe.call(
            "POST",
            f"{probe.base_url}/api/auth/register",
            probe_ip=probe.probe_ip(),
            # Fails LibreChat's validation: no account is created.
            json={"name": "", "email": "", "password": "", "confirm_password": ""},
        )
    except httpx.HTTPError as exc:
        return skipped(
            "register_limit", TITLES["register_limit"], f"The probe failed ({type(exc).__name__})."
        )
    return _limit_finding(
        "register_limit",
        "Registration limit per address",
        parse_rate_limit(answer),
        ours=settings.THROTTLE_RATES["register_ip"],
        our_setting="THROTTLE_REGISTER_IP",
        their_max="REGISTER_MAX",
        their_window="REGISTER_WINDOW",
        why="provisioning beyond it waits until LibreChat's window ends",
    )


def _limit_finding(
    check: str,
    title: str,
    observed: RateLimit | None,
    *,
    ours: str,
    our_setting: str,
    their_max: str,
    their_window: str,
    why: str,
) -> Finding:
    if observed is None or observed.window_s is None:
        return Finding(
            check,
            title,
            "WARN",
            "LibreChat sent no usable rate-limit headers, so its limit could not be read.",
            f"Check {their_max}/{their_window} in LibreChat's .env by hand: they should "
            f"allow at least what {our_setting}={ours} allows.",
        )
    count, period_s = parse_rate(ours)
    window_min = max(observed.window_s / 60, 1 / 60)
    needed = math.ceil(count * observed.window_s / period_s)
    window = f"{number(window_min)} min"
    if observed.limit >= needed:
        return Finding(
            check,
            title,
            "OK",
            f"LibreChat allows {observed.limit} per {window} per address; we need "
            f"{needed} ({our_setting}={ours}).",
        )
    return Finding(
        check,
        title,
        "FAIL",
        f"LibreChat allows {observed.limit} per {window} per address, we allow {needed} in "
        f"that time ({our_setting}={ours}), and {why}.",
        f"Set {their_max}={needed} (or more) with {their_window}={number(window_min)} in "
        f"LibreChat's .env and restart it, or lower {our_setting}.",
    )


def check_clock(probe: Prober) -> Finding:
    check, title = "clock", "Clock skew"
    answer = probe.readyz
    date = answer.headers.get("date") if answer else None
    if answer is None or not date:
        return skipped(check, title, "LibreChat sent no Date header to compare with.")
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp() + 0.5  # 1 s resolution
    except (TypeError, ValueError):
        return skipped(check, title, f"LibreChat's Date header is unreadable: {date!r}.")
    ours = (answer.sent_at + answer.received_at) / 2
    skew = theirs - ours
    margin = 0.5 + (answer.received_at - answer.sent_at) / 2
    budget = float(settings.LIBRECHAT_TOKEN_REFRESH_MARGIN_S)
    budget_name = "LIBRECHAT_TOKEN_REFRESH_MARGIN_S"
    leeway = float(settings.CODE_INTERPRETER_JWT_LEEWAY_S)
    if "jwt" in settings.CODE_INTERPRETER_AUTH and leeway < budget:
        # LibreChat's Code API tokens are valid from its `now`: ahead by more is a 401.
        budget, budget_name = leeway, "CODE_INTERPRETER_JWT_LEEWAY_S"
    said = f"LibreChat's clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} ours"
    fix = "Keep both hosts on NTP (chrony or systemd-timesyncd)."
    if abs(skew) - margin > budget:
        return Finding(
            check,
            title,
            "FAIL",
            f"{said} (± {margin:.1f} s), more than {budget_name}={number(budget)} s: its "
            "tokens look expired or not yet valid to us.",
            fix,
        )
    if abs(skew) - margin > CLOCK_WARN_S:
        return Finding(check, title, "WARN", f"{said} (± {margin:.1f} s).", fix)
    return Finding(check, title, "OK", f"{said} (± {margin:.1f} s).")
