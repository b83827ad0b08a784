"""Who may call: LibreChat's per-user JWT, legacy API keys, no auth only when configured."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django import Settings

from code_interpreter.models import CodeSession
from tests.code_interpreter.conftest import BASE, OTHER_USER, USER, KeyPair, post_exec

PRINT = {"lang": "py", "code": "print('ok')"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# -- nothing configured ------------------------------------------------------------------------


def test_default_refuses_and_says_how_to_configure(api: Client, code_settings: Settings) -> None:
    code_settings.CODE_INTERPRETER_AUTH = []
    response = post_exec(api, PRINT)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "not_authenticated"
    assert "CODE_INTERPRETER_JWT_PUBLIC_KEY" in error["message"]
    assert "CODE_INTERPRETER_AUTH=none" in error["message"]
    for url in (f"download/{'A' * 21}/{'B' * 21}", f"files/{'A' * 21}"):
        assert api.get(f"{BASE}/{url}").status_code == 401


def test_none_mode_takes_calls_without_credentials(api: Client) -> None:
    assert post_exec(api, PRINT).status_code == 200


# -- LibreChat's JWT ---------------------------------------------------------------------------


def test_librechat_eddsa_jwt_is_accepted_and_names_the_owner(
    api: Client, jwt_auth: KeyPair
) -> None:
    response = post_exec(api, PRINT, **bearer(jwt_auth.token()))
    assert response.status_code == 200, response.content
    session = CodeSession.objects.get(pk=response.json()["session_id"])
    assert session.owner == f"user:{USER}"


def test_rs256_and_a_jwk_public_key(
    api: Client, code_settings: Settings, rsa_keys: KeyPair
) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    code_settings.CODE_INTERPRETER_AUTH = ["jwt"]
    public = load_pem_public_key(rsa_keys.public_pem.encode())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))  # type: ignore[arg-type]
    code_settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = json.dumps(jwk)
    assert post_exec(api, PRINT, **bearer(rsa_keys.token())).status_code == 200
    # A JWKS picks the key by kid.
    jwks = {"keys": [{**jwk, "kid": "lc-codeapi-2026-05"}]}
    code_settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = json.dumps(jwks)
    assert post_exec(api, PRINT, **bearer(rsa_keys.token())).status_code == 200
    response = post_exec(api, PRINT, **bearer(rsa_keys.token(kid="other")))
    assert response.status_code == 401
    assert "key id" in error_of(response)["message"]


def test_pem_with_escaped_newlines_on_one_line(
    api: Client, code_settings: Settings, ed25519_keys: KeyPair
) -> None:
    code_settings.CODE_INTERPRETER_AUTH = ["jwt"]
    code_settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = ed25519_keys.public_pem.replace("\n", "\\n")
    assert post_exec(api, PRINT, **bearer(ed25519_keys.token())).status_code == 200


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("claims", "code", "needle"),
    [
        ({"exp": _now() - 120, "iat": _now() - 400}, "token_expired", "expired"),
        ({"aud": "someone-else"}, "token_not_valid", "audience"),
        ({"iss": "mallory"}, "token_not_valid", "issuer"),
        ({"exp": _now() + 3600}, "token_not_valid", "lifetime"),
        ({"sub": None}, "token_not_valid", "sub"),
        ({"sub": "bad user id!"}, "token_not_valid", "sub"),
        ({"nbf": _now() + 600, "exp": _now() + 700, "iat": _now() + 500}, "token_not_valid", "yet"),
    ],
)
def test_bad_claims_are_401(
    api: Client, jwt_auth: KeyPair, claims: dict[str, Any], code: str, needle: str
) -> None:
    response = post_exec(api, PRINT, **bearer(jwt_auth.token(**claims)))
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == code
    assert needle in error["message"].lower()


def test_small_clock_skew_is_allowed(api: Client, jwt_auth: KeyPair) -> None:
    now = _now()
    token = jwt_auth.token(iat=now + 10, nbf=now + 10, exp=now + 250)
    assert post_exec(api, PRINT, **bearer(token)).status_code == 200


def test_forged_tokens_are_401(api: Client, jwt_auth: KeyPair, rsa_keys: KeyPair) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    header, _payload, signature = jwt_auth.token().split(".")
    tampered = jwt_auth.token(sub=OTHER_USER).split(".")[1]
    cases = [
        (KeyPair("EdDSA", other, "").token(), "signature"),
        (f"{header}.{tampered}.{signature}", "signature"),
        (jwt.encode({"sub": USER}, "s" * 32, algorithm="HS256"), "algorithm 'HS256'"),
        (jwt.encode({"sub": USER}, "", algorithm="none"), "algorithm 'none'"),
        (rsa_keys.token(), ""),  # RS256 is allowed, but the configured key is Ed25519
        ("not-a-jwt", "not a JWT"),
    ]
    for token, needle in cases:
        response = post_exec(api, PRINT, **bearer(token))
        assert response.status_code == 401, token
        error = error_of(response)
        assert error["code"] == "token_not_valid"
        assert needle.lower() in error["message"].lower(), error


def test_wrong_scheme_is_401(api: Client, jwt_auth: KeyPair) -> None:
    response = post_exec(api, PRINT, Authorization=f"Token {jwt_auth.token()}")
    assert response.status_code == 401
    assert "Bearer" in error_of(response)["message"]


def test_jwt_mode_needs_a_token(api: Client, jwt_auth: KeyPair) -> None:
    response = post_exec(api, PRINT)
    assert response.status_code == 401
    assert "Authorization: Bearer" in error_of(response)["message"]


def test_bearer_sent_where_jwt_is_not_configured(api: Client) -> None:
    response = post_exec(api, PRINT, Authorization="Bearer abc.def.ghi")
    assert response.status_code == 401
    assert "CODE_INTERPRETER_JWT_PUBLIC_KEY" in error_of(response)["message"]


def test_with_jwt_the_owner_is_the_subject_not_the_query(api: Client, jwt_auth: KeyPair) -> None:
    mine = bearer(jwt_auth.token())
    theirs = bearer(jwt_auth.token(sub=OTHER_USER))
    code = "open('/mnt/data/a.txt','w').write('a')"
    # A user_id in the body cannot claim someone else's identity.
    body = post_exec(api, {"lang": "py", "code": code, "user_id": OTHER_USER}, **mine).json()
    [entry] = body["files"]
    sid, fid = entry["storage_session_id"], entry["id"]
    assert CodeSession.objects.get(pk=sid).owner == f"user:{USER}"
    url = f"{BASE}/download/{sid}/{fid}?kind=user&id={USER}"
    assert api.get(url, headers=mine).status_code == 200
    assert api.get(url, headers=theirs).status_code == 404
    assert api.get(f"{BASE}/sessions/{sid}/objects/{fid}", headers=theirs).status_code == 404
    assert api.delete(f"{BASE}/files/{sid}/{fid}", headers=theirs).status_code == 404
    ref = {"id": fid, "storage_session_id": sid, "name": "a.txt", "kind": "user"}
    exec_theirs = post_exec(api, {"lang": "bash", "code": "cat a.txt", "files": [ref]}, **theirs)
    assert exec_theirs.status_code == 404
    exec_mine = post_exec(api, {"lang": "bash", "code": "cat a.txt", "files": [ref]}, **mine)
    assert exec_mine.json()["stdout"] == "a"


def test_upload_with_jwt_belongs_to_the_subject(api: Client, jwt_auth: KeyPair) -> None:
    response = api.post(
        f"{BASE}/upload",
        {"kind": "user", "id": OTHER_USER, "file": SimpleUploadedFile("a.txt", b"a")},
        headers={**bearer(jwt_auth.token()), "User-Id": OTHER_USER},
    )
    assert response.status_code == 200
    assert CodeSession.objects.get(pk=response.json()["storage_session_id"]).owner == f"user:{USER}"


# -- legacy X-API-Key --------------------------------------------------------------------------


@pytest.fixture
def api_keys(code_settings: Settings) -> list[str]:
    code_settings.CODE_INTERPRETER_AUTH = ["api_key"]
    code_settings.CODE_INTERPRETER_API_KEYS = ["first-key-0123456789", "second-key-0123456789"]
    return list(code_settings.CODE_INTERPRETER_API_KEYS)


def test_api_keys(api: Client, api_keys: list[str]) -> None:
    for key in api_keys:
        assert post_exec(api, PRINT, **{"X-API-Key": key}).status_code == 200
    wrong = post_exec(api, PRINT, **{"X-API-Key": "first-key-012345678"})
    assert wrong.status_code == 401
    assert error_of(wrong) == {"code": "invalid_api_key", "message": "Invalid API key."}
    missing = post_exec(api, PRINT)
    assert missing.status_code == 401
    assert "X-API-Key" in error_of(missing)["message"]


def test_api_key_sent_where_none_are_configured(api: Client) -> None:
    response = post_exec(api, PRINT, **{"X-API-Key": "anything"})
    assert response.status_code == 401
    assert "CODE_INTERPRETER_API_KEYS" in error_of(response)["message"]


def test_legacy_user_hints_keep_users_apart(api: Client, api_keys: list[str]) -> None:
    key = {"X-API-Key": api_keys[0]}
    code = "open('/mnt/data/a.txt','w').write('a')"
    body = post_exec(api, {"lang": "py", "code": code, "user_id": USER}, **key).json()
    [entry] = body["files"]
    url = f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}"
    assert api.get(f"{url}?kind=user&id={USER}", headers=key).status_code == 200
    assert api.get(f"{url}?kind=user&id={OTHER_USER}", headers=key).status_code == 404
    # Naming nobody, the ids are the capability (bash_tool sends no user).
    assert api.get(url, headers=key).status_code == 200


def test_misconfiguration_fails_loudly() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "CODE_INTERPRETER_AUTH": "jwt", "CODE_INTERPRETER_JWT_PUBLIC_KEY": ""}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "hestami_ai.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CODE_INTERPRETER_JWT_PUBLIC_KEY is not set" in result.stderr


def test_system_checks_name_what_is_missing(code_settings: Settings) -> None:
    from code_interpreter.checks import check_code_api_auth

    code_settings.CODE_INTERPRETER_AUTH = []
    assert [m.id for m in check_code_api_auth()] == ["code_interpreter.W002"]
    code_settings.CODE_INTERPRETER_AUTH = ["jwt"]
    code_settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nnope\n"
    [error] = check_code_api_auth()
    assert error.id == "code_interpreter.E001"
    assert "CODE_INTERPRETER_JWT_PUBLIC_KEY" in error.msg
