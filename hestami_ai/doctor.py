"""Does LibreChat suit us? The checks behind ``manage.py librechat_doctor`` (docs/observability.md).

Each check looks from outside, the way we use LibreChat, and says OK, WARN, FAIL or SKIP with a
one-line finding and a concrete fix. The probes are few and chosen never to cost a real
deployment anything:

* every probe that a per-IP limiter counts carries ``X-Forwarded-For`` with a fresh address
  from the documentation ranges (RFC 5737), so it spends that address's budget, not a user's or
  ours; only when LibreChat wrongly keys on our own address (the TRUST_PROXY failure this finds)
  do the log-in probes (three then) count against us, and the registration probe is not sent;
* the log-in probe has no credentials (``Missing credentials``: no password check, no account);
  the registration probe fails validation (no account is created);
* our User-Agent is only ever sent to a route that LibreChat's ``uaParser`` guards after it has
  passed a local check, and only with ``--user`` (an account of ours): a non-browser agent there
  would ban that user and the address for two hours;
* the one real log-in is our own admin's (``manage.py librechat_bootstrap``), to read the role
  LibreChat gives it; from a documentation address like the probes when addresses are forwarded,
  and logged out again at once.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from hestami_ai import doctor_remote_agents
from users import librechat
from users.crypto import DecryptionError
from users.librechat_admin import librechat_admin_get, librechat_admin_login

Status = Literal["OK", "WARN", "FAIL", "SKIP"]
SEVERITY: dict[str, int] = {"OK": 0, "SKIP": 0, "WARN": 1, "FAIL": 2}

# RFC 5737 documentation networks: never a real client, so probes spend nobody's budget.
_PROBE_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")
# LibreChat's defaults for the Code API JWT (packages/api/src/auth/codeapi.ts).
LIBRECHAT_JWT_ISSUER = "librechat"
LIBRECHAT_JWT_AUDIENCE = "codeapi"
LIBRECHAT_JWT_KID = "lc-codeapi-2026-05"
LIBRECHAT_JWT_TTL_S = 300
# A browser name ua-parser-js certainly finds (a subset of what it accepts, on purpose: a wrong
# "yes" here would cost a two-hour ban, a wrong "no" only a FAIL to look at).
_BROWSER_TOKEN = re.compile(
    r"\b(?:Chrome|CriOS|Firefox|FxiOS|Edg|EdgA|EdgiOS|OPR|SamsungBrowser|AppleWebKit)/\d"
    r"|\bVersion/[\d.]+ .*Safari/",
    re.IGNORECASE,
)
CLOCK_WARN_S = 5.0


@dataclass
class Finding:
    check: str
    title: str
    status: Status
    finding: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class RateLimit:
    limit: int
    remaining: int
    window_s: float | None


@dataclass
class _Answer:
    status: int
    headers: httpx.Headers
    text: str
    sent_at: float
    received_at: float


@dataclass
class Doctor:
    """Runs every check once; ``run()`` returns the findings in report order."""

    user_email: str | None = None
    code_api_url: str | None = None
    timeout_s: float = 5.0
    findings: list[Finding] = field(default_factory=list)
    _http: httpx.Client | None = None
    _probe_ips: list[str] = field(default_factory=list)
    _readyz: _Answer | None = None
    # What the operator admin's log-in read of LibreChat's USER role (the remote_agents check).
    _user_role: tuple[dict[str, Any] | None, str] = (None, "the admin did not log in")

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return str(settings.LIBRECHAT_API_URL)

    def _probe_ip(self) -> str:
        while True:
            ip = f"{random.choice(_PROBE_NETWORKS)}.{random.randint(1, 254)}"  # noqa: S311
            if ip not in self._probe_ips:
                self._probe_ips.append(ip)
                return ip

    def _call(
        self,
        method: str,
        url: str,
        *,
        probe_ip: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        assert self._http is not None
        sent = librechat.request_headers(probe_ip)
        if probe_ip:
            # Whatever LIBRECHAT_FORWARD_CLIENT_IP says: a probe must never count as our address.
            sent["X-Forwarded-For"] = probe_ip
        sent.update(headers or {})
        started = time.time()
        response = self._http.request(method, url, json=json, headers=sent)
        return _Answer(response.status_code, response.headers, response.text, started, time.time())

    def _add(self, *findings: Finding) -> None:
        self.findings.extend(findings)

    def run(self) -> list[Finding]:
        timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0))
        with httpx.Client(timeout=timeout, follow_redirects=False) as http:
            self._http = http
            reachable = self.check_reachable()
            self._add(reachable)
            librechat_checks = ("registration", "email_verification", "client_ip")
            if reachable.status == "FAIL":
                self._add(
                    *(
                        _skipped(name, "LibreChat is unreachable.")
                        for name in (
                            *librechat_checks,
                            "login_limit",
                            "register_limit",
                            "operator_admin",
                            doctor_remote_agents.CHECK,
                        )
                    )
                )
            else:
                self._add(*self.check_startup_config())
                self._add(*self.check_limits())
                self._add(self.check_operator_admin())
                self._add(self.check_remote_agents())
            self._add(self.check_user_agent(reachable.status != "FAIL"))
            self._add(self.check_account_deletion(reachable.status != "FAIL"))
            self._add(self.check_clock())
            self._add(self.check_code_api())
            self._add(self.check_code_api_auth())
        self._http = None
        return self.findings

    # -- reachability ---------------------------------------------------------------------------

    def check_reachable(self) -> Finding:
        title = "LibreChat reachable"
        if not self.base_url:
            return Finding(
                "reachable",
                title,
                "FAIL",
                "LIBRECHAT_API_URL is not set.",
                "Set LIBRECHAT_API_URL to LibreChat's origin, e.g. http://librechat:3080.",
            )
        where = _without_credentials(self.base_url)
        try:
            answer = self._call("GET", f"{self.base_url}/readyz")
            if answer.status == 404:  # a LibreChat without /readyz
                answer = self._call("GET", f"{self.base_url}/health")
        except httpx.HTTPError as exc:
            return Finding(
                "reachable",
                title,
                "FAIL",
                f"{where} is unreachable from here ({type(exc).__name__}).",
                f"Check LIBRECHAT_API_URL ({where}), that LibreChat runs, and that this host "
                f"reaches it: curl {where}/health",
            )
        self._readyz = answer
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
            "Point LIBRECHAT_API_URL at LibreChat's own origin (no path), e.g. "
            "http://librechat:3080.",
        )

    # -- /api/config ----------------------------------------------------------------------------

    def check_startup_config(self) -> list[Finding]:
        try:
            answer = self._call("GET", f"{self.base_url}/api/config")
            config = json.loads(answer.text) if answer.status == 200 else None
        except (httpx.HTTPError, ValueError):
            config = None
        if not isinstance(config, dict):
            why = "GET /api/config did not answer with LibreChat's start-up configuration."
            return [_skipped("registration", why), _skipped("email_verification", why)]
        return [self._registration(config), self._email_verification(config)]

    def _registration(self, config: dict[str, Any]) -> Finding:
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

    def _email_verification(self, config: dict[str, Any]) -> Finding:
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

    # -- per-IP limits and TRUST_PROXY ----------------------------------------------------------

    def check_limits(self) -> list[Finding]:
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
                _skipped("login_limit", why),
                _skipped("register_limit", why),
            ]
        url = f"{self.base_url}/api/auth/login"
        try:
            first = self._call("POST", url, probe_ip=self._probe_ip(), json={})
            first_limit = parse_rate_limit(first)
            later: list[RateLimit | None] = []
            # A second address whose counter is fresh proves LibreChat counts addresses apart
            # (one shared counter would already show the first probe). A third settles the rare
            # case of a documentation address used by an earlier run in the same window.
            usable = first.status not in (403, 429) and first_limit is not None
            while usable and first_limit is not None and len(later) < 2:
                found = parse_rate_limit(
                    self._call("POST", url, probe_ip=self._probe_ip(), json={})
                )
                later.append(found)
                if found is None or found.remaining in (first_limit.limit - 1, 0):
                    break
        except httpx.HTTPError as exc:
            why = f"The log-in probe failed ({type(exc).__name__})."
            return [_skipped(n, why) for n in ("client_ip", "login_limit", "register_limit")]
        client_ip = self._client_ip_finding(first, first_limit, later)
        login = self._limit_finding(
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
            register = _skipped(
                "register_limit",
                "Not probed: LibreChat does not key its limits on the address we forward, so "
                "the probe would spend a registration of every user's.",
            )
        else:
            register = self._register_limit()
        return [client_ip, login, register]

    def _client_ip_finding(
        self, first: _Answer, first_limit: RateLimit | None, later: list[RateLimit | None]
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

    def _register_limit(self) -> Finding:
        try:
            answer = self._call(
                "POST",
                f"{self.base_url}/api/auth/register",
                probe_ip=self._probe_ip(),
                # Fails LibreChat's validation: no account is created.
                json={"name": "", "email": "", "password": "", "confirm_password": ""},
            )
        except httpx.HTTPError as exc:
            return _skipped("register_limit", f"The probe failed ({type(exc).__name__}).")
        return self._limit_finding(
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
        self,
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
        window = f"{_number(window_min)} min"
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
            f"Set {their_max}={needed} (or more) with {their_window}={_number(window_min)} in "
            f"LibreChat's .env and restart it, or lower {our_setting}.",
        )

    # -- LibreChat's ADMIN is ours --------------------------------------------------------------

    def check_operator_admin(self) -> Finding:
        """LibreChat makes its first account ADMIN: it must be the operator's, set up by
        `manage.py librechat_bootstrap`, whose stored credentials log in here and must come back
        with the role ADMIN (users/librechat_admin.py)."""
        check, title = "operator_admin", TITLES["operator_admin"]
        admin = librechat_admin_get()
        if admin is None:
            return Finding(
                check,
                title,
                "FAIL",
                "No LibreChat admin of ours is set up: LibreChat makes its first registered "
                "account ADMIN, so the first user provisioned would hold LibreChat's admin rights "
                "(provisioning refuses to activate such a user).",
                "Run `manage.py librechat_bootstrap --email <operator address>` before "
                "provisioning anyone (docs/operations.md).",
            )
        try:
            login = librechat_admin_login(
                admin, client_ip=self._probe_ip(), read_role=doctor_remote_agents.ROLE
            )
        except DecryptionError:
            return Finding(
                check,
                title,
                "FAIL",
                f"The stored password of {admin.email} cannot be decrypted with any "
                "LIBRECHAT_ENCRYPTION_KEY key.",
                "Put the removed key back in LIBRECHAT_ENCRYPTION_KEY, or adopt the account again: "
                "`manage.py librechat_bootstrap --email ... --password-stdin`.",
            )
        except librechat.LibreChatError as exc:
            if not exc.permanent and exc.message != librechat.EMAIL_DOES_NOT_EXIST:
                return Finding(
                    check, title, "WARN", f"{admin.email} could not log in now: {exc.message}"
                )
            return Finding(
                check,
                title,
                "FAIL",
                f"{admin.email} cannot log in to LibreChat: {exc.message}",
                "Run `manage.py librechat_bootstrap --repair` (it registers the account again "
                "after LibreChat's database was reset).",
            )
        self._user_role = (login.read_role, login.read_role_error)
        if not login.is_admin:
            return Finding(
                check,
                title,
                "FAIL",
                f"{admin.email} logs in as {login.role or 'no role'}, not ADMIN: LibreChat's ADMIN "
                "is another account, perhaps an end user's.",
                "List LibreChat's admins (mongosh: db.users.find({role: 'ADMIN'})), demote or "
                f"delete any that is not ours, give {admin.email} the role ADMIN, then run "
                "`manage.py librechat_bootstrap --repair`.",
            )
        return Finding(check, title, "OK", f"{admin.email} logs in as LibreChat's ADMIN.")

    def check_remote_agents(self) -> Finding:
        status, finding, fix = doctor_remote_agents.verdict(*self._user_role)
        return Finding(doctor_remote_agents.CHECK, doctor_remote_agents.TITLE, status, finding, fix)

    # -- our User-Agent -------------------------------------------------------------------------

    def check_user_agent(self, librechat_reachable: bool) -> Finding:
        check, title = "user_agent", "Our User-Agent passes uaParser"
        agent = str(settings.LIBRECHAT_USER_AGENT)
        if not _BROWSER_TOKEN.search(agent):
            return Finding(
                check,
                title,
                "FAIL",
                f"LIBRECHAT_USER_AGENT {agent[:60]!r} names no browser: LibreChat answers every "
                "chat and file request with 'Illegal request' and, with BAN_VIOLATIONS on, bans "
                "the user and our address for 2 h (not sent to LibreChat to find out).",
                "Unset LIBRECHAT_USER_AGENT (the default is a desktop Chrome string) or set a "
                "current desktop browser's User-Agent.",
            )
        if not self.user_email:
            return Finding(
                check,
                title,
                "OK",
                "It names a browser (checked here; --user EMAIL also asks LibreChat).",
            )
        if not librechat_reachable:
            return _skipped(check, "LibreChat is unreachable.", title=title)
        return self._user_agent_on_librechat(check, title)

    def _user_agent_on_librechat(self, check: str, title: str) -> Finding:
        from asgiref.sync import async_to_sync

        from chat import sessions
        from users.models import ProvisioningState, User

        user = User.objects.filter(email__iexact=self.user_email).first()
        if user is None or user.provisioning_state != ProvisioningState.ACTIVE:
            return Finding(
                check,
                title,
                "WARN",
                f"It names a browser, but {self.user_email} is not an active (provisioned) user "
                "here, so LibreChat could not be asked.",
                "Pass --user with the e-mail of an active account, ideally one kept for checks.",
            )
        ip = self._probe_ip()
        try:
            token = async_to_sync(sessions.access_token)(user, client_ip=ip)
            answer = self._call(
                "GET",
                f"{self.base_url}/api/files/config",
                probe_ip=ip,
                headers={"Authorization": f"Bearer {token}"},
            )
        except sessions.SessionUnavailable as exc:
            return Finding(
                check,
                title,
                "WARN",
                f"It names a browser, but no LibreChat session could be opened for "
                f"{self.user_email}: {exc.message}",
                "Check that user's provisioning (admin, Users) and retry.",
            )
        except httpx.HTTPError as exc:
            return _skipped(check, f"The probe failed ({type(exc).__name__}).", title=title)
        if answer.status == 200 and "Illegal request" in answer.text:
            return Finding(
                check,
                title,
                "FAIL",
                "LibreChat refused our User-Agent as a non-browser on /api/files/config (this "
                f"probe counted a violation against {self.user_email}).",
                "Set LIBRECHAT_USER_AGENT to a current desktop browser's User-Agent, then lift "
                "the ban on that user if LibreChat imposed one.",
            )
        if answer.status == 403:
            return Finding(
                check,
                title,
                "FAIL",
                f"LibreChat answered 403 (banned) for {self.user_email}.",
                "Lift the ban in LibreChat (or wait BAN_DURATION) and look for its cause.",
            )
        return Finding(
            check,
            title,
            "OK",
            f"LibreChat let it through its uaParser check (GET /api/files/config: "
            f"{answer.status}).",
        )

    # -- account deletion -----------------------------------------------------------------------

    def check_account_deletion(self, librechat_reachable: bool) -> Finding:
        """Deleting an account here deletes its LibreChat account as that user, which LibreChat's
        canDeleteAccount allows only with ALLOW_ACCOUNT_DELETION unset or true (or for its
        ADMIN). From outside that shows in two places: deletions of ours waiting on LibreChat's
        403, and, to a signed-in user, ``allowAccountDeletion`` in GET /api/config
        (api/server/routes/config.js; LibreChat-AI/LibreChat v0.8.8)."""
        from users.models import User

        check, title = "account_deletion", TITLES["account_deletion"]
        refused = User.objects.exclude(deletion_requested_at=None).filter(
            deletion_error__contains="ALLOW_ACCOUNT_DELETION"
        )
        if refused.exists():
            return Finding(
                check,
                title,
                "FAIL",
                f"{refused.count()} account deletion(s) wait because LibreChat refuses to delete "
                "accounts (403 'You do not have permission to delete this account').",
                "Set ALLOW_ACCOUNT_DELETION=true (or remove it) in LibreChat's .env and restart "
                "it; the waiting deletions then finish by themselves.",
            )
        if not self.user_email:
            return Finding(
                check,
                title,
                "OK",
                "No deletion waits on LibreChat (--user EMAIL also asks LibreChat whether it "
                "allows deleting accounts: only a signed-in user can see that).",
            )
        if not librechat_reachable:
            return _skipped(check, "LibreChat is unreachable.", title=title)
        return self._account_deletion_on_librechat(check, title)

    def _account_deletion_on_librechat(self, check: str, title: str) -> Finding:
        from asgiref.sync import async_to_sync

        from chat import sessions
        from users.models import ProvisioningState, User

        user = User.objects.filter(email__iexact=self.user_email).first()
        if user is None or user.provisioning_state != ProvisioningState.ACTIVE:
            return _skipped(check, f"{self.user_email} is not an active user here.", title=title)
        ip = self._probe_ip()
        try:
            token = async_to_sync(sessions.access_token)(user, client_ip=ip)
            bearer = {"Authorization": f"Bearer {token}"}
            config = json.loads(
                self._call("GET", f"{self.base_url}/api/config", probe_ip=ip, headers=bearer).text
            )
            role = json.loads(
                self._call("GET", f"{self.base_url}/api/user", probe_ip=ip, headers=bearer).text
            ).get("role")
        except sessions.AdminAccountRefused:  # the proxy refuses it; LibreChat would answer
            role, config = "ADMIN", {}
        except (sessions.SessionUnavailable, httpx.HTTPError, ValueError, AttributeError) as exc:
            return _skipped(check, f"LibreChat could not be asked ({type(exc).__name__}).")
        if role == "ADMIN":
            return Finding(
                check,
                title,
                "WARN",
                f"{self.user_email} is LibreChat's ADMIN, who may always delete itself, so "
                "LibreChat's answer says nothing about other users.",
                "Pass --user with a regular (non-admin) account.",
            )
        allowed = config.get("allowAccountDeletion") if isinstance(config, dict) else None
        if allowed is None:
            return Finding(
                check,
                title,
                "WARN",
                "This LibreChat does not say whether it allows deleting accounts (no "
                "allowAccountDeletion in /api/config): deletions here wait for ever if it does "
                "not.",
                "Make sure LibreChat's ALLOW_ACCOUNT_DELETION is unset or true.",
            )
        if not allowed:
            return Finding(
                check,
                title,
                "FAIL",
                "LibreChat refuses account deletion (ALLOW_ACCOUNT_DELETION=false): deleting a "
                "user here would wait for ever for its LibreChat account to go.",
                "Set ALLOW_ACCOUNT_DELETION=true (or remove it) in LibreChat's .env and restart "
                "it.",
            )
        return Finding(check, title, "OK", "LibreChat allows its users to delete their account.")

    # -- clock ----------------------------------------------------------------------------------

    def check_clock(self) -> Finding:
        check, title = "clock", "Clock skew"
        answer = self._readyz
        date = answer.headers.get("date") if answer else None
        if answer is None or not date:
            return _skipped(check, "LibreChat sent no Date header to compare with.", title=title)
        try:
            theirs = email.utils.parsedate_to_datetime(date).timestamp() + 0.5  # 1 s resolution
        except (TypeError, ValueError):
            return _skipped(check, f"LibreChat's Date header is unreadable: {date!r}.", title=title)
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
                f"{said} (± {margin:.1f} s), more than {budget_name}={_number(budget)} s: its "
                "tokens look expired or not yet valid to us.",
                fix,
            )
        if abs(skew) - margin > CLOCK_WARN_S:
            return Finding(check, title, "WARN", f"{said} (± {margin:.1f} s).", fix)
        return Finding(check, title, "OK", f"{said} (± {margin:.1f} s).")

    # -- the Code API ---------------------------------------------------------------------------

    def check_code_api(self) -> Finding:
        check, title = "code_api", "Code API reachable"
        base = (self.code_api_url or settings.LIBRECHAT_CODE_BASEURL or "").rstrip("/")
        if not base:
            if not settings.CODE_INTERPRETER_AUTH:
                return _skipped(check, "The code interpreter is not configured.", title=title)
            return Finding(
                check,
                title,
                "WARN",
                "LIBRECHAT_CODE_BASEURL is not set here, so the URL LibreChat runs code through "
                "could not be checked.",
                "Set LIBRECHAT_CODE_BASEURL here to the value in LibreChat's .env (our origin + "
                "/api/code/v1), or pass --code-api-url.",
            )
        where = _without_credentials(base)
        fix = (
            f"Set LIBRECHAT_CODE_BASEURL in LibreChat's .env to our origin + /api/code/v1 as "
            f"LibreChat's host reaches it (a service name, not localhost), and restart LibreChat; "
            f"check with: curl {where}/health"
        )
        try:
            assert self._http is not None
            response = self._http.get(
                f"{base}/health",
                headers={"User-Agent": "LibreChat/1.0", **_request_id_header()},
            )
        except httpx.HTTPError as exc:
            return Finding(
                check,
                title,
                "FAIL",
                f"{where}/health is unreachable ({type(exc).__name__}): LibreChat's code tool "
                "fails on every call.",
                fix,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict) and "languages" in body:
            found = Finding(
                check,
                title,
                "OK",
                f"{where}/health answers; languages: {', '.join(body['languages'])}.",
            )
        elif response.status_code == 503 and isinstance(body, dict) and "error" in body:
            message = str(body["error"].get("message", ""))[:200]
            return Finding(
                check,
                title,
                "FAIL",
                f"{where} is reachable but cannot run code: {message}",
                "Install the sandbox on this host (make sandbox, or apt-get install bubblewrap).",
            )
        else:
            return Finding(
                check,
                title,
                "FAIL",
                f"{where}/health answered {response.status_code}, not as our Code API does.",
                fix,
            )
        if _is_loopback(base) and not _is_loopback(self.base_url):
            return Finding(
                check,
                title,
                "WARN",
                f"{where} answers here, but it is a loopback address, and LibreChat runs on "
                "another host: there it means LibreChat itself.",
                fix,
            )
        return found

    def check_code_api_auth(self) -> Finding:
        from code_interpreter import auth

        check, title = "code_api_auth", "Code API JWT settings"
        methods = set(settings.CODE_INTERPRETER_AUTH)
        if not methods:
            if not (self.code_api_url or settings.LIBRECHAT_CODE_BASEURL):
                return _skipped(check, "The code interpreter is not configured.", title=title)
            return Finding(
                check,
                title,
                "FAIL",
                "CODE_INTERPRETER_AUTH is empty: every call to /api/code/v1 is refused (401).",
                "Set CODE_INTERPRETER_JWT_PUBLIC_KEY to the public key of LibreChat's "
                "CODEAPI_JWT_PRIVATE_KEY and CODEAPI_AUTH_PROVIDER=librechat-jwt in LibreChat.",
            )
        problems: list[tuple[Status, str, str]] = []
        if "none" in methods:
            problems.append(
                (
                    "WARN",
                    "CODE_INTERPRETER_AUTH includes none: calls without credentials are accepted.",
                    "Use jwt unless nothing but LibreChat can reach /api/code/v1.",
                )
            )
        if methods == {"api_key"}:
            problems.append(
                (
                    "WARN",
                    "Only X-API-Key is accepted, which LibreChat v0.8.7 never sends.",
                    "Configure jwt (CODE_INTERPRETER_JWT_PUBLIC_KEY, CODEAPI_AUTH_PROVIDER="
                    "librechat-jwt in LibreChat).",
                )
            )
        if "jwt" in methods:
            problems += _jwt_problems(auth)
        if not problems:
            return Finding(
                check,
                title,
                "OK",
                f"{', '.join(sorted(methods))}; the public key parses and suits "
                f"{', '.join(settings.CODE_INTERPRETER_JWT_ALGORITHMS)}; iss/aud as LibreChat's "
                f"defaults.{_kid_note(auth) if 'jwt' in methods else ''} Whether LibreChat holds "
                "the matching private key shows only on its first code call (401 if not).",
            )
        worst: Status = max((p[0] for p in problems), key=lambda s: SEVERITY[s])
        return Finding(
            check,
            title,
            worst,
            " ".join(p[1] for p in problems),
            " ".join(p[2] for p in problems),
        )


def _jwt_problems(auth: Any) -> list[tuple[Status, str, str]]:
    problem = auth.check_public_key()
    if problem:
        return [
            (
                "FAIL",
                problem,
                "Set CODE_INTERPRETER_JWT_PUBLIC_KEY to the PEM public key of LibreChat's "
                "CODEAPI_JWT_PRIVATE_KEY (openssl pkey -in codeapi.key -pubout).",
            )
        ]
    keys: dict[str | None, Any] = auth._public_keys(settings.CODE_INTERPRETER_JWT_PUBLIC_KEY)
    problems: list[tuple[Status, str, str]] = []
    kinds = {_key_kind(key) for key in keys.values()}
    allowed = set(settings.CODE_INTERPRETER_JWT_ALGORITHMS)
    usable = {alg for alg, kind in (("EdDSA", "ed"), ("RS256", "rsa")) if kind in kinds} & allowed
    if not usable:
        problems.append(
            (
                "FAIL",
                f"The public key is {'/'.join(sorted(kinds))} but CODE_INTERPRETER_JWT_ALGORITHMS "
                f"is {','.join(sorted(allowed))}: LibreChat signs with EdDSA (Ed25519 keys) or "
                "RS256 (RSA keys), so no token can verify.",
                "Give an Ed25519 public key with EdDSA allowed (LibreChat's default), or an RSA "
                "one with RS256 allowed and CODEAPI_JWT_ALGORITHM=RS256 in LibreChat.",
            )
        )
    if settings.CODE_INTERPRETER_JWT_ISSUER != LIBRECHAT_JWT_ISSUER:
        problems.append(
            (
                "WARN",
                f"CODE_INTERPRETER_JWT_ISSUER is {settings.CODE_INTERPRETER_JWT_ISSUER!r}; "
                f"LibreChat signs iss={LIBRECHAT_JWT_ISSUER!r} unless CODEAPI_JWT_ISSUER says "
                "otherwise.",
                f"Set CODEAPI_JWT_ISSUER={settings.CODE_INTERPRETER_JWT_ISSUER} in LibreChat, "
                "or unset CODE_INTERPRETER_JWT_ISSUER.",
            )
        )
    if settings.CODE_INTERPRETER_JWT_AUDIENCE != LIBRECHAT_JWT_AUDIENCE:
        problems.append(
            (
                "WARN",
                f"CODE_INTERPRETER_JWT_AUDIENCE is {settings.CODE_INTERPRETER_JWT_AUDIENCE!r}; "
                f"LibreChat signs aud={LIBRECHAT_JWT_AUDIENCE!r} unless CODEAPI_JWT_AUDIENCE says "
                "otherwise.",
                f"Set CODEAPI_JWT_AUDIENCE={settings.CODE_INTERPRETER_JWT_AUDIENCE} in LibreChat, "
                "or unset CODE_INTERPRETER_JWT_AUDIENCE.",
            )
        )
    if settings.CODE_INTERPRETER_JWT_MAX_LIFETIME_S < LIBRECHAT_JWT_TTL_S:
        problems.append(
            (
                "WARN",
                f"We accept tokens living at most {settings.CODE_INTERPRETER_JWT_MAX_LIFETIME_S} "
                f"s; LibreChat's live {LIBRECHAT_JWT_TTL_S} s unless CODEAPI_JWT_TTL_SECONDS is "
                "lower.",
                f"Set CODEAPI_JWT_TTL_SECONDS={settings.CODE_INTERPRETER_JWT_MAX_LIFETIME_S} in "
                "LibreChat.",
            )
        )
    return problems


def _kid_note(auth: Any) -> str:
    """A JWKS picks the key by `kid`; LibreChat's CODEAPI_JWT_KID cannot be seen from here."""
    kids = sorted(kid for kid in auth._public_keys(settings.CODE_INTERPRETER_JWT_PUBLIC_KEY) if kid)
    if not kids:
        return ""
    return (
        f" Key ids: {', '.join(kids)}; LibreChat's CODEAPI_JWT_KID must be one of them (its "
        f"default is {LIBRECHAT_JWT_KID})."
    )


def _key_kind(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "ed"
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec"
    return type(key).__name__


# -- helpers -------------------------------------------------------------------------------------


def _skipped(check: str, why: str, *, title: str | None = None) -> Finding:
    return Finding(check, title or TITLES.get(check, check), "SKIP", why)


TITLES = {
    "reachable": "LibreChat reachable",
    "registration": "Registration enabled",
    "email_verification": "E-mail verification",
    "client_ip": "Per-user addresses (TRUST_PROXY)",
    "login_limit": "Log-in limit per address",
    "register_limit": "Registration limit per address",
    "operator_admin": "LibreChat admin of our own",
    doctor_remote_agents.CHECK: doctor_remote_agents.TITLE,
    "user_agent": "Our User-Agent passes uaParser",
    "account_deletion": "LibreChat allows account deletion",
    "clock": "Clock skew",
    "code_api": "Code API reachable",
    "code_api_auth": "Code API JWT settings",
}


def _request_id_header() -> dict[str, str]:
    from hestami_ai.logs import outgoing_request_id

    return {"X-Request-ID": outgoing_request_id()}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return url


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_rate(rate: str) -> tuple[int, float]:
    """DRF's ``"20/min"`` as (20, 60.0)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0].lower()]
    return int(count), float(seconds)


def parse_rate_limit(answer: _Answer | None) -> RateLimit | None:
    """express-rate-limit's headers: legacy ``X-RateLimit-*`` (reset: epoch seconds, LibreChat's
    default), draft-6 ``RateLimit-*`` or draft-7 ``RateLimit`` (reset: seconds from now)."""
    if answer is None:
        return None
    headers = answer.headers
    try:
        if "x-ratelimit-limit" in headers:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = headers.get("x-ratelimit-reset")
            window = float(reset) - _server_time(answer) if reset else None
        elif "ratelimit-limit" in headers:
            limit = int(headers["ratelimit-limit"])
            remaining = int(headers["ratelimit-remaining"])
            reset = headers.get("ratelimit-reset")
            window = float(reset) if reset else None
        elif "ratelimit" in headers:
            fields = dict(re.findall(r"(limit|remaining|reset)=(\d+)", headers["ratelimit"]))
            limit, remaining = int(fields["limit"]), int(fields["remaining"])
            window = float(fields["reset"]) if "reset" in fields else None
        else:
            return None
    except (KeyError, ValueError):
        return None
    if window is not None:
        # A fresh key's window starts now; LibreChat's windows are whole minutes.
        window = max(round(window / 60), 1) * 60.0 if window >= 30 else max(window, 1.0)
    return RateLimit(limit=limit, remaining=remaining, window_s=window)


def _server_time(answer: _Answer) -> float:
    date = answer.headers.get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return answer.received_at


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {"OK": 0, "WARN": 0, "FAIL": 0, "SKIP": 0}
    for finding in findings:
        counts[finding.status] += 1
    return counts
