"""Fixtures for the Code API: settings on temporary storage, JWT keys, a real server on loopback."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.test import Client
from pytest_django import Settings

from code_interpreter import sandbox
from code_interpreter.sandbox import warm
from tests import servers

BASE = "/api/code/v1"
USER = "665f1c2e9b1e4a0012345678"  # LibreChat user ids are Mongo ObjectIds
OTHER_USER = "665f1c2e9b1e4a0087654321"


@pytest.fixture(autouse=True)
def no_warm_sandbox_left() -> Iterator[None]:
    """A test's warm sandboxes end with it: none outlives it to run (or be sampled) later."""
    yield
    warm.pool.clear()


@pytest.fixture(scope="session")
def sandbox_ready() -> None:
    ready, message = sandbox.sandbox_status()
    if not ready:
        pytest.fail(f"The sandbox is not ready (run `make sandbox`): {message}")


@pytest.fixture
def code_settings(settings: Settings, tmp_path: Path, sandbox_ready: None) -> Settings:
    """No authentication unless a test configures one; sessions and files under tmp_path.

    Not autouse: the sandbox's own tests in this folder run on the real settings.
    """
    settings.CODE_INTERPRETER_AUTH = ["none"]
    settings.CODE_INTERPRETER_API_KEYS = []
    settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = ""
    settings.CODE_INTERPRETER_SESSIONS_DIR = tmp_path / "sessions"
    settings.STORAGES = {
        **settings.STORAGES,
        "code_interpreter": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "stored"), "base_url": None},
        },
    }
    return settings


@pytest.fixture
def api(db: None, code_settings: Settings) -> Client:
    return Client()


def post_exec(client: Client, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"{BASE}/exec",
        json.dumps(body),
        content_type="application/json",
        headers={"User-Agent": "LibreChat/1.0", **headers},
    )


# -- JWT ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    algorithm: str
    private_pem: bytes
    public_pem: str

    def token(self, *, kid: str = "lc-codeapi-2026-05", **claims: Any) -> str:
        """A token shaped like LibreChat's (packages/api/src/auth/codeapi.ts)."""
        now = int(time.time())
        payload = {
            "iss": "librechat",
            "aud": "codeapi",
            "sub": USER,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            "tenant_id": "legacy",
            "role": "USER",
            "principal_source": "librechat_jwt",
            "auth_context_hash": secrets.token_hex(16),
        }
        payload.update(claims)
        payload = {key: value for key, value in payload.items() if value is not None}
        return jwt.encode(payload, self.private_pem, algorithm=self.algorithm, headers={"kid": kid})


def _pair(algorithm: str, private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> KeyPair:
    return KeyPair(
        algorithm=algorithm,
        private_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


@pytest.fixture(scope="session")
def ed25519_keys() -> KeyPair:
    return _pair("EdDSA", ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="session")
def rsa_keys() -> KeyPair:
    return _pair("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def jwt_auth(code_settings: Settings, ed25519_keys: KeyPair) -> KeyPair:
    code_settings.CODE_INTERPRETER_AUTH = ["jwt"]
    code_settings.CODE_INTERPRETER_JWT_PUBLIC_KEY = ed25519_keys.public_pem
    return ed25519_keys


# -- a real server -----------------------------------------------------------------------------


class AppServer(servers.AppServer):
    @property
    def base_url(self) -> str:
        return f"{self.url}{BASE}"


@pytest.fixture
def app_server(transactional_db: None, code_settings: Settings) -> Iterator[AppServer]:
    code_settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    with AppServer() as server:
        yield server


# -- a Redis of our own ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on loopback (Debian's redis-server, which CI has), so the
    Redis lease store is tested whatever REDIS_URL the run uses, and never touches its data."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    port = servers.free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
