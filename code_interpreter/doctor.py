"""The doctor's checks of the Code API as LibreChat reaches it: our /health answers at
LIBRECHAT_CODE_BASEURL, each execution profile's URL serves that profile, and our JWT settings
fit LibreChat's defaults."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.conf import settings

from code_interpreter import auth, profiles
from core.doctor import SEVERITY, Doctor, Finding, Status, is_loopback, skipped, without_credentials
from core.logs import outgoing_request_id

# LibreChat's defaults for the Code API JWT (packages/api/src/auth/codeapi.ts).
LIBRECHAT_JWT_ISSUER = "librechat"
LIBRECHAT_JWT_AUDIENCE = "codeapi"
LIBRECHAT_JWT_KID = "lc-codeapi-2026-05"
LIBRECHAT_JWT_TTL_S = 300


def code_api_checks(doctor: Doctor) -> list[Finding]:
    return [check_code_api(doctor), check_code_api_profiles(doctor), check_code_api_auth(doctor)]


def _http(doctor: Doctor) -> httpx.Client:
    timeout = httpx.Timeout(doctor.timeout_s, connect=min(doctor.timeout_s, 5.0))
    return doctor.shared(
        httpx.Client, lambda: httpx.Client(timeout=timeout, follow_redirects=False)
    )


def request_id_header() -> dict[str, str]:
    return {"X-Request-ID": outgoing_request_id()}


def check_code_api(doctor: Doctor) -> Finding:
    check, title = "code_api", "Code API reachable"
    base = (doctor.code_api_url or settings.LIBRECHAT_CODE_BASEURL or "").rstrip("/")
    if not base:
        if not settings.CODE_INTERPRETER_AUTH:
            return skipped(check, title, "The code interpreter is not configured.")
        return Finding(
            check,
            title,
            "WARN",
            "LIBRECHAT_CODE_BASEURL is not set here, so the URL LibreChat runs code through "
            "could not be checked.",
            "Set LIBRECHAT_CODE_BASEURL here to the value in LibreChat's .env (our origin + "
            "/api/code/v1), or pass --code-api-url.",
        )
    where = without_credentials(base)
    fix = (
        f"Set LIBRECHAT_CODE_BASEURL in LibreChat's .env to our origin + /api/code/v1 as "
        f"LibreChat's host reaches it (a service name, not localhost), and restart LibreChat; "
        f"check with: curl {where}/health"
    )
    try:
        response = _http(doctor).get(
            f"{base}/health",
            headers={"User-Agent": "LibreChat/1.0", **request_id_header()},
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
    if is_loopback(base) and not is_loopback(doctor.base_url):
        return Finding(
            check,
            title,
            "WARN",
            f"{where} answers here, but it is a loopback address, and LibreChat runs on "
            "another host: there it means LibreChat itself.",
            fix,
        )
    return found


def check_code_api_profiles(doctor: Doctor) -> Finding:
    """LibreChat v0.8.8 says which execution profile it expects on every call, and sends the
    stateful profile's calls to LIBRECHAT_CODE_BASEURL_STATEFUL: a URL serving the other profile
    fails each of them with 409 execution_profile_mismatch (code_interpreter/profiles.py)."""
    check, title = "code_api_profiles", "Code API execution profiles"
    urls = {
        "default": (doctor.code_api_url or settings.LIBRECHAT_CODE_BASEURL or "").rstrip("/"),
        "stateful": settings.LIBRECHAT_CODE_BASEURL_STATEFUL,
    }
    if not any(urls.values()):
        return skipped(check, title, "LIBRECHAT_CODE_BASEURL is not set here.")
    served: list[str] = []
    problems: list[tuple[str, str]] = []
    for profile, base in urls.items():
        if not base:
            continue
        setting, path = profiles.BASE_URLS[profile]
        where = without_credentials(base)
        fix = f"Set {setting} in LibreChat's .env and here to our origin + {path}."
        headers = {"User-Agent": "LibreChat/1.0", profiles.EXPECTED_HEADER: profile}
        try:
            response = _http(doctor).get(f"{base}/health", headers=headers | request_id_header())
        except httpx.HTTPError as exc:
            if profile != "default":  # the default URL's reachability is code_api's finding
                problems.append((f"{where} is unreachable ({type(exc).__name__}).", fix))
            continue
        actual = response.headers.get(profiles.PROFILE_HEADER)
        if response.status_code == 200 and actual == profile:
            served.append(f"{profile} at {where}")
        elif actual:
            problems.append(
                (
                    f"{setting} ({where}) serves the {actual} profile: LibreChat's {profile} "
                    "calls get 409 execution_profile_mismatch.",
                    fix,
                )
            )
        elif profile != "default" or response.status_code == 200:
            problems.append(
                (
                    f"{where}/health answered {response.status_code} without an execution "
                    "profile, not as our Code API does.",
                    fix,
                )
            )
    if problems:
        return Finding(
            check, title, "FAIL", " ".join(p for p, _ in problems), " ".join(f for _, f in problems)
        )
    if not served:
        return skipped(check, title, "The Code API did not answer (see code_api).")
    finding = f"Serves the {' and the '.join(served)}."
    if not urls["stateful"]:
        finding += (
            " LIBRECHAT_CODE_BASEURL_STATEFUL is not set here: LibreChat v0.8.8 agents with "
            "stateful code sessions need it in LibreChat's .env (our origin + "
            "/api/code/stateful/v1); set it here too and this check tries it."
        )
    return Finding(check, title, "OK", finding)


def check_code_api_auth(doctor: Doctor) -> Finding:
    check, title = "code_api_auth", "Code API JWT settings"
    methods = set(settings.CODE_INTERPRETER_AUTH)
    if not methods:
        if not (doctor.code_api_url or settings.LIBRECHAT_CODE_BASEURL):
            return skipped(check, title, "The code interpreter is not configured.")
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
        problems += _jwt_problems()
    if not problems:
        return Finding(
            check,
            title,
            "OK",
            f"{', '.join(sorted(methods))}; the public key parses and suits "
            f"{', '.join(settings.CODE_INTERPRETER_JWT_ALGORITHMS)}; iss/aud as LibreChat's "
            f"defaults.{_kid_note() if 'jwt' in methods else ''} Whether LibreChat holds "
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


def _jwt_problems() -> list[tuple[Status, str, str]]:
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


def _kid_note() -> str:
    """A JWKS picks the key by `kid`; LibreChat's CODEAPI_JWT_KID cannot be seen from here."""
    kids = sorted(kid for kid in auth._public_keys(settings.CODE_INTERPRETER_JWT_PUBLIC_KEY) if kid)
    if not kids:
        return ""
    return (
        f" Key ids: {', '.join(kids)}; LibreChat's CODEAPI_JWT_KID must be one of them (its "
        f"default is {LIBRECHAT_JWT_KID})."
    )


def _key_kind(key: Any) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "ed"
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec"
    return type(key).__name__
