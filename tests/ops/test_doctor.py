from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.management import call_command
from django.core.management.base import CommandError

from code_interpreter import auth
from tests.chat.conftest import activate
from tests.conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD
from tests.factories import make_legacy_user
from tests.librechat_double.server import LibreChatDouble
from tests.servers import AppServer

pytestmark = pytest.mark.django_db(transaction=True)

PROBE_NETWORKS = ("192.0.2.", "198.51.100.", "203.0.113.")


def public_pem(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def code_api(settings: Any, sandbox_ready: None) -> Iterator[str]:
    """Our app under uvicorn, serving /api/code/v1 with JWT auth as LibreChat would call it."""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = public_pem(ed25519.Ed25519PrivateKey.generate())
    settings.CODE_INTERPRETER_AUTH = ["jwt"]
    auth._public_keys.cache_clear()
    with AppServer() as server:
        settings.LIBRECHAT_CODE_BASEURL = f"{server.url}/api/code/v1"
        yield settings.LIBRECHAT_CODE_BASEURL


@pytest.fixture
def healthy(
    librechat: LibreChatDouble, code_api: str, monkeypatch: pytest.MonkeyPatch
) -> LibreChatDouble:
    """LibreChat set up as docs/observability.md asks: limits at least ours, and its ADMIN our
    operator's account, adopted with `librechat_bootstrap`."""
    librechat.config.update(login_max=100, register_max=10)
    librechat.state.remote.grant("USER", "USE")  # interface.remoteAgents.use (docs/openai-api.md)
    monkeypatch.setattr("sys.stdin", io.StringIO(OPERATOR_PASSWORD))
    call_command(
        "librechat_bootstrap", "--email", OPERATOR_EMAIL, "--password-stdin", stdout=io.StringIO()
    )
    return librechat


def doctor(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    try:
        call_command("librechat_doctor", "--json", *args, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def by_check(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {finding["check"]: finding for finding in report["findings"]}


def failed(check: str, *args: str) -> dict[str, str]:
    """Run the doctor; it must exit 1 with ``check`` failed. That finding."""
    code, report = doctor(*args)
    finding = by_check(report)[check]
    assert code == 1
    assert finding["status"] == "FAIL"
    return finding


def test_healthy_setup_passes(healthy: LibreChatDouble) -> None:
    code, report = doctor("--strict")
    findings = by_check(report)
    assert code == 0, report
    assert report["ok"] is True
    statuses = {name: f["status"] for name, f in findings.items()}
    # Nothing outside LibreChat shows its JWT secrets: said, not checked.
    assert statuses.pop("jwt_secrets") == "SKIP"
    assert set(statuses.values()) == {"OK"}, findings
    assert set(findings) == {
        "reachable",
        "librechat_version",
        "email_login",
        "jwt_secrets",
        "registration",
        "email_verification",
        "client_ip",
        "login_limit",
        "register_limit",
        "operator_admin",
        "remote_agents",
        "user_agent",
        "account_deletion",
        "clock",
        "code_api",
        "code_api_profiles",
        "code_api_auth",
    }
    assert "languages: bash, py." in findings["code_api"]["finding"]


def test_probes_never_spend_a_real_address(healthy: LibreChatDouble) -> None:
    state = healthy.state
    seen, logged_in = len(state.requests), state.counter("login_successes")
    doctor()
    auth = ("/api/auth/login", "/api/auth/register")
    probes = [r for r in state.requests[seen:] if r.path in auth]
    assert len(probes) == 4  # 2 log-ins without credentials, 1 registration, the admin's log-in
    assert all(p.client_ip and p.client_ip.startswith(PROBE_NETWORKS) for p in probes)
    assert len({p.client_ip for p in probes}) == 4
    assert state.counter("accounts_created") == 0
    assert state.counter("login_successes") == logged_in + 1  # our admin's, logged out at once
    assert state.sessions_of(OPERATOR_EMAIL) == []


def test_remote_agents_not_granted(healthy: LibreChatDouble) -> None:
    healthy.state.remote.grant("USER", "USE", value=False)  # LibreChat's default
    finding = failed("remote_agents")
    assert "USER role lacks REMOTE_AGENTS USE" in finding["finding"]
    assert "interface: { remoteAgents: { use: true } }" in finding["fix"]


def test_no_operator_admin(librechat: LibreChatDouble, code_api: str) -> None:
    librechat.config.update(login_max=100, register_max=10)
    finding = failed("operator_admin")
    assert "LibreChat makes its first registered account ADMIN" in finding["finding"]
    assert "manage.py librechat_bootstrap --email" in finding["fix"]


def test_operator_admin_no_longer_admin(healthy: LibreChatDouble) -> None:
    healthy.state.get_user(OPERATOR_EMAIL).role = "USER"  # type: ignore[union-attr]
    finding = failed("operator_admin")
    assert f"{OPERATOR_EMAIL} logs in as USER, not ADMIN" in finding["finding"]
    assert "librechat_bootstrap --repair" in finding["fix"]


def test_operator_admin_gone_from_librechat(healthy: LibreChatDouble) -> None:
    healthy.state.delete_user(OPERATOR_EMAIL)
    finding = failed("operator_admin")
    assert "cannot log in to LibreChat: Email does not exist." in finding["finding"]


def test_registration_off(healthy: LibreChatDouble) -> None:
    healthy.config.update(allow_registration=False)
    finding = failed("registration")
    assert "refuses registrations" in finding["finding"]
    assert "ALLOW_REGISTRATION=true" in finding["fix"]


def test_librechat_default_limits(librechat: LibreChatDouble, code_api: str) -> None:
    code, report = doctor()
    findings = by_check(report)
    assert code == 1
    login, register = findings["login_limit"], findings["register_limit"]
    assert login["status"] == register["status"] == "FAIL"
    assert "LibreChat allows 7 per 5 min per address" in login["finding"]
    assert "THROTTLE_LOGIN_IP=20/min" in login["finding"]
    assert "LOGIN_MAX=100 (or more) with LOGIN_WINDOW=5" in login["fix"]
    assert "LibreChat allows 5 per 60 min per address" in register["finding"]
    assert "REGISTER_MAX=10 (or more) with REGISTER_WINDOW=60" in register["fix"]
    assert findings["client_ip"]["status"] == "OK"


def test_non_browser_user_agent_is_caught_without_sending_it(
    healthy: LibreChatDouble, settings: Any
) -> None:
    settings.LIBRECHAT_USER_AGENT = "okhttp/4.12.0"
    alice = activate(make_legacy_user(email="alice@example.com"), healthy)
    finding = failed("user_agent", "--user", alice.email)
    assert "'okhttp/4.12.0' names no browser" in finding["finding"]
    assert "Unset LIBRECHAT_USER_AGENT" in finding["fix"]
    # Never sent where uaParser looks: no violation, no ban.
    assert healthy.state.counter("non_browser_requests") == 0
    assert healthy.state.requests_to("/api/files/config") == []


def test_user_agent_confirmed_by_librechat(healthy: LibreChatDouble) -> None:
    alice = activate(make_legacy_user(email="alice@example.com"), healthy)
    code, report = doctor("--user", alice.email)
    finding = by_check(report)["user_agent"]
    assert code == 0, report
    assert "LibreChat let it through its uaParser check" in finding["finding"]
    probe = healthy.state.requests_to("/api/files/config")[-1]
    assert probe.client_ip
    assert probe.client_ip.startswith(PROBE_NETWORKS)


def test_user_agent_refused_by_librechat(healthy: LibreChatDouble) -> None:
    # A LibreChat whose ua-parser-js does not recognise our (Chrome) string.
    healthy.config.update(non_browser_user_agent_pattern="Chrome/130")
    alice = activate(make_legacy_user(email="alice@example.com"), healthy)
    finding = failed("user_agent", "--user", alice.email)
    assert "refused our User-Agent as a non-browser" in finding["finding"]
    assert "LIBRECHAT_USER_AGENT" in finding["fix"]


def test_code_api_unreachable(healthy: LibreChatDouble, settings: Any) -> None:
    settings.LIBRECHAT_CODE_BASEURL = "http://127.0.0.1:9/api/code/v1"
    finding = failed("code_api")
    assert "http://127.0.0.1:9/api/code/v1/health is unreachable" in finding["finding"]
    assert "LIBRECHAT_CODE_BASEURL in LibreChat's .env" in finding["fix"]


def test_code_api_wrong_path(healthy: LibreChatDouble, code_api: str, settings: Any) -> None:
    settings.LIBRECHAT_CODE_BASEURL = code_api.removesuffix("/api/code/v1")
    finding = by_check(doctor()[1])["code_api"]
    assert finding["status"] == "FAIL"
    assert "answered 404, not as our Code API does" in finding["finding"]


def test_jwt_key_that_no_librechat_algorithm_fits(healthy: LibreChatDouble, settings: Any) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = public_pem(key)
    settings.CODE_INTERPRETER_JWT_ALGORITHMS = ["EdDSA"]
    settings.CODE_INTERPRETER_JWT_ISSUER = "someone-else"
    auth._public_keys.cache_clear()
    finding = failed("code_api_auth")
    assert (
        "The public key is rsa but CODE_INTERPRETER_JWT_ALGORITHMS is EdDSA" in (finding["finding"])
    )
    assert "CODEAPI_JWT_ISSUER=someone-else" in finding["fix"]


def test_jwks_mid_rotation_passes_and_names_its_key_ids(
    healthy: LibreChatDouble, settings: Any
) -> None:
    """The key rotation of docs/operations.md: a JWKS with our own key ids. LibreChat's kid
    cannot be seen from here, so the doctor says which ids it must use instead of warning."""
    from jwt.algorithms import OKPAlgorithm

    keys = []
    for kid in ("hestami-codeapi-1", "hestami-codeapi-2"):
        jwk = json.loads(OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key()))
        keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
    settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = json.dumps({"keys": keys})
    auth._public_keys.cache_clear()
    code, report = doctor("--strict")
    finding = by_check(report)["code_api_auth"]
    assert (code, finding["status"]) == (0, "OK"), finding
    assert "hestami-codeapi-1, hestami-codeapi-2" in finding["finding"]
    assert "CODEAPI_JWT_KID" in finding["finding"]


def test_trust_proxy_too_low_behind_a_proxy(healthy: LibreChatDouble) -> None:
    healthy.config.update(proxies_in_front=1)  # nginx in front of LibreChat, TRUST_PROXY=1
    code, report = doctor()
    findings = by_check(report)
    assert code == 1
    assert findings["client_ip"]["status"] == "FAIL"
    assert "counted as one address" in findings["client_ip"]["finding"]
    assert "TRUST_PROXY" in findings["client_ip"]["fix"]
    # The registration probe would have spent everybody's budget: not sent.
    assert findings["register_limit"]["status"] == "SKIP"
    assert healthy.state.requests_to("/api/auth/register") == []
    # And TRUST_PROXY=2 is the fix.
    healthy.config.update(trust_proxy=2)
    healthy.state.login_limiter.reset()
    assert by_check(doctor()[1])["client_ip"]["status"] == "OK"


def test_clock_skew(healthy: LibreChatDouble) -> None:
    healthy.state.advance_clock(120)
    finding = failed("clock")
    assert "LibreChat's clock is 1" in finding["finding"]  # 119.x or 120.x s
    assert "ahead of ours" in finding["finding"]
    assert "CODE_INTERPRETER_JWT_LEEWAY_S=30" in finding["finding"]


def test_warnings_fail_only_with_strict(healthy: LibreChatDouble) -> None:
    healthy.config.update(email_verification_required=True)
    code, report = doctor()
    assert code == 0
    assert by_check(report)["email_verification"]["status"] == "WARN"
    assert doctor("--strict")[0] == 1


def regular_user(librechat: LibreChatDouble, email: str = "alice@example.com") -> Any:
    """A user whose LibreChat account is not LibreChat's first (ADMIN) one."""
    librechat.state.add_user("admin@librechat.example", "an-admin-password", role="ADMIN")
    return activate(make_legacy_user(email=email), librechat)


def test_account_deletion_allowed(healthy: LibreChatDouble) -> None:
    alice = regular_user(healthy)
    code, report = doctor("--user", alice.email, "--strict")
    assert code == 0, report
    finding = by_check(report)["account_deletion"]
    assert finding["finding"] == "LibreChat allows its users to delete their account."
    assert healthy.state.accounts_deleted == 0  # asked, never tried


def test_account_deletion_refused_by_librechat(healthy: LibreChatDouble) -> None:
    healthy.config.update(allow_account_deletion=False)
    alice = regular_user(healthy)
    finding = failed("account_deletion", "--user", alice.email)
    assert "ALLOW_ACCOUNT_DELETION=false" in finding["finding"]
    assert "ALLOW_ACCOUNT_DELETION=true" in finding["fix"]


def test_account_deletion_asked_as_librechats_admin_says_nothing(
    healthy: LibreChatDouble,
) -> None:
    healthy.config.update(allow_account_deletion=False)
    # An account LibreChat made ADMIN (as it does its first one, had no operator admin come first).
    admin = activate(make_legacy_user(email="first@example.com"), healthy, role="ADMIN")
    code, report = doctor("--user", admin.email)
    finding = by_check(report)["account_deletion"]
    assert code == 0  # a warning: exit 1 only with --strict
    assert finding["status"] == "WARN"
    assert "ADMIN" in finding["finding"]
    assert "non-admin" in finding["fix"]


def test_deletions_waiting_on_librechats_refusal_fail(healthy: LibreChatDouble) -> None:
    from django.utils import timezone

    from users.models import User

    stuck = make_legacy_user(email="leaving@example.com", is_active=False)
    User.objects.filter(pk=stuck.pk).update(
        deletion_requested_at=timezone.now(),
        deletion_error="LibreChat refuses account deletion (403: ALLOW_ACCOUNT_DELETION is "
        "false). ...",
    )
    finding = failed("account_deletion")
    assert finding["finding"].startswith("1 account deletion(s) wait")


def test_librechat_down(healthy: LibreChatDouble) -> None:
    healthy.set_mode("down")
    try:
        code, report = doctor()
    finally:
        healthy.set_mode("ok")
    findings = by_check(report)
    assert code == 1
    assert findings["reachable"]["status"] == "FAIL"
    assert "is unreachable from here (ConnectError)" in findings["reachable"]["finding"]
    assert "LIBRECHAT_API_URL" in findings["reachable"]["fix"]
    assert findings["registration"]["status"] == "SKIP"
    assert findings["code_api"]["status"] == "OK"  # ours still answers


def test_text_report(librechat: LibreChatDouble, code_api: str) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("librechat_doctor", stdout=out, no_color=True)
    text = out.getvalue()
    assert raised.value.returncode == 1
    assert text.startswith(f"LibreChat doctor: {librechat.url}\n")
    assert "[FAIL] Log-in limit per address" in text
    assert "fix: Set LOGIN_MAX=100" in text
    assert "[ OK ] LibreChat reachable" in text
    assert "[FAIL] LibreChat admin of our own" in text
    assert "LibreChat: version 0.8.8 (from /api/config buildInfo)." in text
    assert "[SKIP] LibreChat JWT secrets" in text  # nothing outside LibreChat shows them
    assert text.rstrip().endswith("3 FAIL, 1 SKIP: problems found.")


def test_client_ip_not_forwarded(healthy: LibreChatDouble, settings: Any) -> None:
    settings.LIBRECHAT_FORWARD_CLIENT_IP = False
    code, report = doctor()
    findings = by_check(report)
    assert code == 1
    assert findings["client_ip"]["status"] == "FAIL"
    assert "LIBRECHAT_FORWARD_CLIENT_IP=true" in findings["client_ip"]["fix"]
    assert findings["login_limit"]["status"] == "SKIP"
    # No probe went out; the operator admin logged in once, as it did to be set up.
    logins = healthy.state.requests_to("/api/auth/login")
    assert [r.json()["email"] for r in logins] == [OPERATOR_EMAIL, OPERATOR_EMAIL]


def test_a_probe_address_used_earlier_is_not_mistaken_for_a_shared_one(
    healthy: LibreChatDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    from librechat.probe import Prober

    addresses = iter(["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14"])
    monkeypatch.setattr(Prober, "_probe_ip", lambda self: next(addresses))
    # An earlier run's probe from 192.0.2.11, still inside LibreChat's window.
    state = healthy.state
    state.login_limiter.hit("192.0.2.11", limit=100, window_s=300, now=state.now())
    seen = len(state.requests)
    code, report = doctor()
    assert code == 0, report
    assert by_check(report)["client_ip"]["status"] == "OK"
    logins = [r for r in state.requests[seen:] if r.path == "/api/auth/login"]
    # Three probes (the third settles it), then the operator admin's own log-in.
    assert [r.client_ip for r in logins] == ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.14"]


def test_code_api_profiles(healthy: LibreChatDouble, code_api: str, settings: Any) -> None:
    """LibreChat v0.8.8's two base URLs: each must serve its own execution profile."""
    assert (
        "LIBRECHAT_CODE_BASEURL_STATEFUL is not set here"
        in (by_check(doctor()[1])["code_api_profiles"]["finding"])
    )
    stateful = code_api.replace("/api/code/v1", "/api/code/stateful/v1")
    settings.LIBRECHAT_CODE_BASEURL_STATEFUL = stateful
    finding = by_check(doctor()[1])["code_api_profiles"]
    assert finding["status"] == "OK"
    assert f"the stateful at {stateful}" in finding["finding"]
    settings.LIBRECHAT_CODE_BASEURL_STATEFUL = code_api  # the default profile's URL
    finding = failed("code_api_profiles")
    assert "serves the default profile: LibreChat's stateful calls get 409" in finding["finding"]
    assert "LIBRECHAT_CODE_BASEURL_STATEFUL in LibreChat's .env" in finding["fix"]
    settings.LIBRECHAT_CODE_BASEURL_STATEFUL = "http://127.0.0.1:9/api/code/stateful/v1"
    assert "is unreachable" in failed("code_api_profiles")["finding"]
