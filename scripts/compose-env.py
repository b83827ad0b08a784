#!/usr/bin/env python3
"""Write the secrets the compose stack needs into .env (compose reads it for `${VAR}`).

    .venv/bin/python scripts/compose-env.py [PATH]      (default: .env beside the compose files)

Values already in the file are kept; only missing ones are generated, so running it again is
safe. The Code API key pair is generated together: LibreChat signs with the private half
(CODEAPI_JWT_PRIVATE_KEY), we verify with the public half (CODE_INTERPRETER_JWT_PUBLIC_KEY).
PEM keys are written on one line with literal ``\\n``; both sides turn those back into newlines.
See docs/deployment.md and docs/operations.md (rotation).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
KEY_PAIR = ("CODEAPI_JWT_PRIVATE_KEY", "CODE_INTERPRETER_JWT_PUBLIC_KEY")

# Every `${VAR:?...}` of compose.dev.yaml and compose.librechat.yaml (tests/deploy checks this).
GENERATORS: dict[str, Callable[[], str]] = {
    # Ours (docs/configuration.md).
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "JWT_SIGNING_KEY": lambda: secrets.token_urlsafe(50),
    "LIBRECHAT_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    # LibreChat's own (its .env.example): 32-byte hex secrets, a 32-byte CREDS_KEY, a 16-byte IV.
    "LIBRECHAT_JWT_SECRET": lambda: secrets.token_hex(32),
    "LIBRECHAT_JWT_REFRESH_SECRET": lambda: secrets.token_hex(32),
    "LIBRECHAT_CREDS_KEY": lambda: secrets.token_hex(32),
    "LIBRECHAT_CREDS_IV": lambda: secrets.token_hex(16),
    "MEILI_MASTER_KEY": lambda: secrets.token_urlsafe(32),
}


def one_line(pem: bytes) -> str:
    return pem.decode().strip().replace("\n", "\\n")


def code_api_key_pair() -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {KEY_PAIR[0]: one_line(private), KEY_PAIR[1]: one_line(public)}


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.strip().startswith("#"):
                values[name.strip()] = value.strip()
    return values


def ensure_env(path: Path) -> list[str]:
    """Add every missing secret to ``path``; return the names that were generated."""
    existing = read_env(path)
    generated = {name: make() for name, make in GENERATORS.items() if not existing.get(name)}
    present = [name for name in KEY_PAIR if existing.get(name)]
    if len(present) == 1:
        raise SystemExit(
            f"{path} has {present[0]} but not its other half: remove it to generate a new pair."
        )
    if not present:
        generated.update(code_api_key_pair())
    if generated:
        lines = (
            path.read_text().splitlines()
            if path.exists()
            else [
                "# Secrets for compose.dev.yaml + compose.librechat.yaml (scripts/compose-env.py).",
                "# Keep this file out of version control and readable only by you.",
            ]
        )
        lines += [f"{name}={value}" for name, value in generated.items()]
        path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return list(generated)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    generated = ensure_env(path)
    if generated:
        print(f"Wrote {', '.join(generated)} to {path}.")
    else:
        print(f"{path} already has every secret.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
