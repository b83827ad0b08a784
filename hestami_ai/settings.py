"""Settings for Hestami AI: one module, environment only (see docs/configuration.md)."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from code_interpreter import defaults as sandbox_defaults
from core.env import env_bool, env_float, env_int, env_list, env_secret, env_str
from core.logs import logging_config
from hestami_ai.devsecrets import read_dev_secrets

django_stubs_ext.monkeypatch()  # generic classes such as UserChangeForm[User] at run time

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("HESTAMI_TESTING", False)
_dev_secrets = read_dev_secrets() if DEBUG else {}

SECRET_KEY = (
    env_secret(
        "SECRET_KEY",
        debug=DEBUG,
        dev_secrets=_dev_secrets,
        hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
    )
    or "insecure-development-only-key"
)
JWT_SIGNING_KEY = (
    env_secret(
        "JWT_SIGNING_KEY",
        debug=DEBUG,
        dev_secrets=_dev_secrets,
        hint="It signs the mobile apps' JWTs; generate it like SECRET_KEY but keep it different.",
    )
    or "insecure-development-only-jwt-key"
)
# Comma-separated Fernet keys: the first encrypts, all decrypt (`manage.py rotate_librechat_key`).
LIBRECHAT_ENCRYPTION_KEY = env_secret(
    "LIBRECHAT_ENCRYPTION_KEY",
    debug=DEBUG,
    dev_secrets=_dev_secrets,
    hint="Generate one with: python -c "
    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'.",
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# How many reverse proxies in front of us append to X-Forwarded-For (like LibreChat's TRUST_PROXY).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "core",
    "users",
    "chat",
    "code_interpreter",
]

# Django's own middleware, in subclasses that skip a thread hop per request under ASGI.
MIDDLEWARE = [
    # First: every request (and every log line it causes) gets its id; then the health probes,
    # answered before host validation, HTTPS redirects and sessions (docs/observability.md).
    "core.middleware.RequestIdMiddleware",
    "core.health.HealthCheckMiddleware",
    "core.middleware.SecurityMiddleware",
    "core.middleware.ServeStaticMiddleware",
    "core.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",
    "core.middleware.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "core.middleware.MessageMiddleware",
    "core.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hestami_ai.urls"
WSGI_APPLICATION = "hestami_ai.wsgi.application"
ASGI_APPLICATION = "hestami_ai.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: a SQLite file under var/ unless DATABASE_URL names another (PostgreSQL in production).
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_POOL", True
):
    # psycopg's pool: ASGI requests and workflow threads borrow connections instead of opening
    # one each time (Django's persistent connections do not suit ASGI).
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN", 1, minimum=0),
            "max_size": env_int("DATABASE_POOL_MAX", 20, minimum=1),
            "timeout": 30,
        }
    }
else:
    # SQLite: a connection per request thread, kept (the request threads are pooled:
    # core/asgi_handler.py). Closing a WAL database's last connection checkpoints it and
    # removes its -wal file, which cost every request milliseconds (docs/configuration.md).
    sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    DATABASES["default"]["CONN_MAX_AGE"] = env_int(
        "DATABASE_CONN_MAX_AGE", 600 if sqlite else 0, minimum=0
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and background work share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: workflow tests share the test database with worker subprocesses.
    # One per test run, so concurrent runs do not trample each other.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: per-process memory unless REDIS_URL is set; throttles and LibreChat sessions live here.
REDIS_URL = env_str("REDIS_URL")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hestami"}
    )
}

AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["users.backends.EmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing dominates test time; the algorithm is not what the tests are about.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # ServeStatic expects it; also creates var/
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
# The chat UI's browser libraries, copied there by scripts/install-frontend.sh (git-ignored).
STATICFILES_DIRS = [("vendor", BASE_DIR / "frontend" / "vendor")]
# Static files are served by ServeStatic (WhiteNoise's async-capable fork) from the ASGI app
# itself; in development straight from the apps.
SERVESTATIC_USE_FINDERS = DEBUG or TESTING
SERVESTATIC_AUTOREFRESH = DEBUG

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Hestami AI <noreply@localhost>")

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST API -------------------------------------------------------------------------------
THROTTLE_RATES = {
    "login_ip": env_str("THROTTLE_LOGIN_IP", "20/min"),
    "login_account": env_str("THROTTLE_LOGIN_ACCOUNT", "10/min"),
    "register_ip": env_str("THROTTLE_REGISTER_IP", "10/hour"),
    "register_account": env_str("THROTTLE_REGISTER_ACCOUNT", "5/hour"),
    "librechat_password": env_str("THROTTLE_LIBRECHAT_PASSWORD", "10/hour"),
    # /api/v1 (docs/openai-api.md), per user; an empty value turns the limit off.
    "openai_completions": env_str("THROTTLE_OPENAI_COMPLETIONS", "60/min"),
    "openai_models": env_str("THROTTLE_OPENAI_MODELS", "120/min"),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 14, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hestami AI API",
    "DESCRIPTION": "Identities, JWT auth and the LibreChat bridge. Every error has the shape "
    '`{"error": {"code", "message", "fields"}}`.',
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # /api/v1 is plain async Django views (a streaming proxy): its paths are added here.
        "chat.openai_schema.add_openai_paths",
    ],
}

# --- LibreChat ------------------------------------------------------------------------------
LIBRECHAT_API_URL = env_str("LIBRECHAT_API_URL").rstrip("/")
LIBRECHAT_PASSWORD_LENGTH = 40
# LibreChat bans non-browser User-Agents on its chat and file routes (contract A5), so every call
# we make presents a browser's.
LIBRECHAT_USER_AGENT = env_str(
    "LIBRECHAT_USER_AGENT",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
)
LIBRECHAT_FORWARD_CLIENT_IP = env_bool("LIBRECHAT_FORWARD_CLIENT_IP", True)
LIBRECHAT_CONNECT_TIMEOUT_S = env_float("LIBRECHAT_CONNECT_TIMEOUT_S", 5.0)
LIBRECHAT_TIMEOUT_S = env_float("LIBRECHAT_TIMEOUT_S", 30.0)
# The LibreChat release in front of which we run (librechat/versions.py): `auto` reads it from
# LibreChat's /api/config (buildInfo), or pin one (0.8.7, 0.8.8). Re-read every TTL seconds.
LIBRECHAT_VERSION = env_str("LIBRECHAT_VERSION", "auto").strip().lower().removeprefix("v")
if LIBRECHAT_VERSION != "auto" and not re.fullmatch(
    r"\d+\.\d+\.\d+(-rc\.?\d+)?", LIBRECHAT_VERSION
):
    raise ImproperlyConfigured(
        f"LIBRECHAT_VERSION must be 'auto' or look like 0.8.8, not {LIBRECHAT_VERSION!r}"
    )
LIBRECHAT_VERSION_TTL_S = env_float("LIBRECHAT_VERSION_TTL_S", 300.0)

# --- Provisioning (users/workflows.py) ------------------------------------------------------
# Connection errors and 5xx: exponential backoff from BASE to MAX seconds, RETRIES times per run.
PROVISIONING_BACKOFF_BASE_S = env_float("PROVISIONING_BACKOFF_BASE_S", 2.0)
PROVISIONING_BACKOFF_MAX_S = env_float("PROVISIONING_BACKOFF_MAX_S", 300.0)
PROVISIONING_TRANSIENT_RETRIES = env_int("PROVISIONING_TRANSIENT_RETRIES", 10, minimum=0)
# 429s are waited out as long as LibreChat asks (capped), up to this many times per run.
PROVISIONING_RATE_LIMIT_WAITS = env_int("PROVISIONING_RATE_LIMIT_WAITS", 50, minimum=0)
PROVISIONING_RATE_LIMIT_MAX_WAIT_S = env_float("PROVISIONING_RATE_LIMIT_MAX_WAIT_S", 3600.0)
# Reconciliation re-starts runs: pending for longer than this, or failed with runs left.
PROVISIONING_STUCK_AFTER_S = env_int("PROVISIONING_STUCK_AFTER_S", 600, minimum=1)
PROVISIONING_MAX_RUNS = env_int("PROVISIONING_MAX_RUNS", 5, minimum=1)
PROVISIONING_RECONCILE_EVERY_S = env_int("PROVISIONING_RECONCILE_EVERY_S", 60, minimum=1)
PROVISIONING_CONCURRENCY = env_int("PROVISIONING_CONCURRENCY", 8, minimum=1)


# --- DBOS (core/dbos.py) --------------------------------------------------------------
# The system database sits next to the app database: with PostgreSQL a sibling database on the
# same server (`<name>_dbos`), so every process of a scaled-out deployment shares one workflow
# store; with SQLite a file beside the app's (`var/db.sqlite3` -> `var/db.dbos.sqlite3`), so a
# second app database gets a second workflow store. Tests derive it from the test database.
def _default_dbos_url() -> str:
    database = DATABASES["default"]
    name = str(database.get("NAME") or "")
    if TESTING:
        name = str(database.get("TEST", {}).get("NAME") or f"test_{name}")
    if database["ENGINE"] == "django.db.backends.postgresql":
        base = DATABASE_URL.partition("?")[0].rpartition("/")[0]
        return f"postgresql://{base.split('://', 1)[1]}/{name}_dbos"
    if database["ENGINE"] == "django.db.backends.sqlite3" and name and name != ":memory:":
        path = Path(name)
        return f"sqlite:///{path.with_name(f'{path.stem}.dbos.sqlite3')}"
    return f"sqlite:///{VAR_DIR / 'dbos.sqlite3'}"


DBOS_SYSTEM_DATABASE_URL = env_str("DBOS_SYSTEM_DATABASE_URL", _default_dbos_url())
# Unique and stable per process role: a restarted process recovers its own pending workflows.
DBOS_EXECUTOR_ID = env_str("DBOS_EXECUTOR_ID")
# Fixed, so a new build still recovers the workflows an older one left pending.
DBOS_APPLICATION_VERSION = env_str("DBOS_APPLICATION_VERSION", "hestami-1")
DBOS_QUEUE_POLLING_S = env_float("DBOS_QUEUE_POLLING_S", 0.25)
# Workflows running at once in one process (DBOS's thread pool).
DBOS_MAX_THREADS = env_int("DBOS_MAX_THREADS", 32, minimum=1)
# Whether the ASGI web process launches DBOS and runs workflows (besides `manage.py run_workflows`).
DBOS_IN_WEB = env_bool("DBOS_IN_WEB", True)

# --- Chat proxy (chat/, docs/chat-proxy.md) -------------------------------------------------
CHAT_PROXY_MAX_BODY_BYTES = env_int("CHAT_PROXY_MAX_BODY_BYTES", 150 * 1024 * 1024, minimum=0)
# Bodies up to this size are kept in memory so a request can be replayed after a 401 + refresh.
CHAT_PROXY_REPLAY_MAX_BYTES = env_int("CHAT_PROXY_REPLAY_MAX_BYTES", 3 * 1024 * 1024, minimum=0)
# Upstream answers of known length up to this size are read whole and sent in one piece.
CHAT_PROXY_BUFFER_MAX_BYTES = env_int("CHAT_PROXY_BUFFER_MAX_BYTES", 256 * 1024, minimum=0)
CHAT_PROXY_TIMEOUT_S = env_float("CHAT_PROXY_TIMEOUT_S", 60.0)
# LibreChat sends no heartbeats and tool calls can be silent for minutes.
CHAT_PROXY_STREAM_READ_TIMEOUT_S = env_float("CHAT_PROXY_STREAM_READ_TIMEOUT_S", 900.0)
CHAT_PROXY_POOL_TIMEOUT_S = env_float("CHAT_PROXY_POOL_TIMEOUT_S", 10.0)
CHAT_PROXY_MAX_CONNECTIONS = env_int("CHAT_PROXY_MAX_CONNECTIONS", 2000, minimum=1)
CHAT_PROXY_MAX_KEEPALIVE = env_int("CHAT_PROXY_MAX_KEEPALIVE", 100, minimum=0)
CHAT_PROXY_PING_INTERVAL_S = env_float("CHAT_PROXY_PING_INTERVAL_S", 15.0)
# How long a JWT request may trust an active user read from the database (0: every request reads).
# At most 1 s: a deactivation must reach every process within a second (users/lifecycle.py).
CHAT_PROXY_USER_CACHE_S = env_float("CHAT_PROXY_USER_CACHE_S", 0.5)
if not 0 <= CHAT_PROXY_USER_CACHE_S <= 1:
    raise ImproperlyConfigured(
        "CHAT_PROXY_USER_CACHE_S must be between 0 and 1: a deactivated user must be refused "
        f"by every process within a second, not after {CHAT_PROXY_USER_CACHE_S}."
    )
# Renew LibreChat's access token this long before it expires.
LIBRECHAT_TOKEN_REFRESH_MARGIN_S = env_float("LIBRECHAT_TOKEN_REFRESH_MARGIN_S", 60.0)
# How long a request waits for another one renewing the same user's session. (How long the
# renewing one holds the lock follows from LIBRECHAT_*_TIMEOUT_S: chat/sessions.py.)
LIBRECHAT_SESSION_LOCK_WAIT_S = env_float("LIBRECHAT_SESSION_LOCK_WAIT_S", 20.0)

# --- Celery (hestami_ai/celery.py) ----------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# One JSON object per line in production (log shippers parse it), readable text in development.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
# uvicorn's line per request (its own --no-access-log is undone by this LOGGING).
ACCESS_LOG = env_bool("ACCESS_LOG", True)
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL, access_log=ACCESS_LOG)

# --- Health (core/health.py, docs/observability.md) -----------------------------------
READYZ_TIMEOUT_S = env_float("READYZ_TIMEOUT_S", 2.0)
# Checks reported by /readyz that never make it answer 503: it answers 200 "degraded" with
# their detail. LibreChat by default (sign-up, accounts, the Code API and queued provisioning
# work without it); set it empty for the strict behaviour.
READYZ_OPTIONAL_CHECKS = env_list("READYZ_OPTIONAL_CHECKS", "librechat")
if set(READYZ_OPTIONAL_CHECKS) - {"database", "cache", "dbos", "librechat", "sandbox"}:
    raise ImproperlyConfigured(
        "READYZ_OPTIONAL_CHECKS takes a list of: database, cache, dbos, librechat, sandbox."
    )

# --- Code interpreter (code_interpreter/, docs/code-interpreter.md) -------------------------
# LibreChat's LIBRECHAT_CODE_BASEURL points at <origin>/api/code/v1. Who may call it: "jwt"
# (LibreChat's CODEAPI_* per-user JWT), "api_key" (legacy X-API-Key) and/or "none" (only for a
# network-isolated deployment). Default: whichever of the first two is configured; with neither,
# every call is refused with a message saying how to configure one.
CODE_INTERPRETER_JWT_PUBLIC_KEY = env_str("CODE_INTERPRETER_JWT_PUBLIC_KEY")  # PEM, JWK or JWKS
# The LIBRECHAT_CODE_BASEURL LibreChat is given (our origin + /api/code/v1): the doctor checks it.
LIBRECHAT_CODE_BASEURL = env_str("LIBRECHAT_CODE_BASEURL").rstrip("/")
# LibreChat v0.8.8: the URL of the stateful execution profile (our origin + /api/code/stateful/v1).
LIBRECHAT_CODE_BASEURL_STATEFUL = env_str("LIBRECHAT_CODE_BASEURL_STATEFUL").rstrip("/")
CODE_INTERPRETER_API_KEYS = env_list("CODE_INTERPRETER_API_KEYS")
CODE_INTERPRETER_AUTH = env_list(
    "CODE_INTERPRETER_AUTH",
    ",".join(
        method
        for method, configured in (
            ("jwt", CODE_INTERPRETER_JWT_PUBLIC_KEY),
            ("api_key", CODE_INTERPRETER_API_KEYS),
        )
        if configured
    ),
)
if set(CODE_INTERPRETER_AUTH) - {"jwt", "api_key", "none"}:
    raise ImproperlyConfigured("CODE_INTERPRETER_AUTH takes a list of: jwt, api_key, none.")
if "jwt" in CODE_INTERPRETER_AUTH and not CODE_INTERPRETER_JWT_PUBLIC_KEY:
    raise ImproperlyConfigured(
        "CODE_INTERPRETER_AUTH includes jwt but CODE_INTERPRETER_JWT_PUBLIC_KEY is not set: give "
        "the public key matching LibreChat's CODEAPI_JWT_PRIVATE_KEY (PEM or JWK)."
    )
if "api_key" in CODE_INTERPRETER_AUTH and not CODE_INTERPRETER_API_KEYS:
    raise ImproperlyConfigured(
        "CODE_INTERPRETER_AUTH includes api_key but CODE_INTERPRETER_API_KEYS is empty."
    )
CODE_INTERPRETER_JWT_ALGORITHMS = env_list("CODE_INTERPRETER_JWT_ALGORITHMS", "EdDSA,RS256")
CODE_INTERPRETER_JWT_ISSUER = env_str("CODE_INTERPRETER_JWT_ISSUER", "librechat")
CODE_INTERPRETER_JWT_AUDIENCE = env_str("CODE_INTERPRETER_JWT_AUDIENCE", "codeapi")
CODE_INTERPRETER_JWT_LEEWAY_S = env_int("CODE_INTERPRETER_JWT_LEEWAY_S", 30, minimum=0)
CODE_INTERPRETER_JWT_MAX_LIFETIME_S = env_int("CODE_INTERPRETER_JWT_MAX_LIFETIME_S", 300, minimum=1)
# Executions at once in this process, and per caller; the rest wait this long, then get a 429.
CODE_INTERPRETER_MAX_CONCURRENT = env_int(
    "CODE_INTERPRETER_MAX_CONCURRENT", 2 * (os.cpu_count() or 1), minimum=1
)
CODE_INTERPRETER_MAX_CONCURRENT_PER_USER = env_int(
    "CODE_INTERPRETER_MAX_CONCURRENT_PER_USER", 4, minimum=1
)
CODE_INTERPRETER_QUEUE_WAIT_S = env_float("CODE_INTERPRETER_QUEUE_WAIT_S", 10.0)
CODE_INTERPRETER_MAX_QUEUED = env_int("CODE_INTERPRETER_MAX_QUEUED", 64, minimum=0)
# Per caller (the JWT's user, or the API key), across sessions and web processes
# (code_interpreter/budgets.py): live sessions, and the disk of all of them together.
CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER = env_int(
    "CODE_INTERPRETER_MAX_SESSIONS_PER_CALLER", 1000, minimum=1
)
CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES = env_int(
    "CODE_INTERPRETER_DISK_QUOTA_PER_CALLER_BYTES", 2 * 1024**3, minimum=1
)
# Sessions (their /mnt/data and files) live this long after their last use (LibreChat: >= 24 h).
CODE_INTERPRETER_SESSION_TTL_HOURS = env_int("CODE_INTERPRETER_SESSION_TTL_HOURS", 48, minimum=24)
CODE_INTERPRETER_SESSIONS_DIR = Path(
    env_str("CODE_INTERPRETER_SESSIONS_DIR", str(VAR_DIR / "code-sessions"))
)
CODE_INTERPRETER_MAX_REQUEST_BYTES = env_int(
    "CODE_INTERPRETER_MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1024
)
CODE_INTERPRETER_MAX_UPLOAD_BYTES = env_int(
    "CODE_INTERPRETER_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024
)
CODE_INTERPRETER_MAX_OUTPUT_FILES = env_int("CODE_INTERPRETER_MAX_OUTPUT_FILES", 50, minimum=1)
# Sandbox limits (code_interpreter/sandbox/limits.py; defaults: code_interpreter/defaults.py);
# timeouts in seconds, sizes in bytes.
CODE_INTERPRETER_TIMEOUT_DEFAULT = env_float(
    "CODE_INTERPRETER_TIMEOUT_DEFAULT", sandbox_defaults.TIMEOUT_DEFAULT_S
)
CODE_INTERPRETER_TIMEOUT_MAX = env_float(
    "CODE_INTERPRETER_TIMEOUT_MAX", sandbox_defaults.TIMEOUT_MAX_S
)
CODE_INTERPRETER_CPU_SECONDS = env_int(
    "CODE_INTERPRETER_CPU_SECONDS", sandbox_defaults.CPU_SECONDS, minimum=1
)
CODE_INTERPRETER_MEMORY_BYTES = env_int(
    "CODE_INTERPRETER_MEMORY_BYTES", sandbox_defaults.MEMORY_BYTES, minimum=1
)
CODE_INTERPRETER_MAX_PROCESSES = env_int(
    "CODE_INTERPRETER_MAX_PROCESSES", sandbox_defaults.MAX_PROCESSES, minimum=1
)
CODE_INTERPRETER_MAX_FILE_BYTES = env_int(
    "CODE_INTERPRETER_MAX_FILE_BYTES", sandbox_defaults.MAX_FILE_BYTES, minimum=1
)
CODE_INTERPRETER_MAX_OUTPUT_BYTES = env_int(
    "CODE_INTERPRETER_MAX_OUTPUT_BYTES", sandbox_defaults.MAX_OUTPUT_BYTES, minimum=1
)
CODE_INTERPRETER_DISK_QUOTA_BYTES = env_int(
    "CODE_INTERPRETER_DISK_QUOTA_BYTES", sandbox_defaults.DISK_QUOTA_BYTES, minimum=1
)
# Warm per-session sandboxes (code_interpreter/sandbox/warm.py): how many one web process keeps,
# per caller, and for how long idle; WARM_MAX=0 runs every execution in a fresh sandbox.
CODE_INTERPRETER_WARM_MAX = env_int(
    "CODE_INTERPRETER_WARM_MAX", sandbox_defaults.WARM_MAX, minimum=0
)
CODE_INTERPRETER_WARM_MAX_PER_CALLER = env_int(
    "CODE_INTERPRETER_WARM_MAX_PER_CALLER", sandbox_defaults.WARM_MAX_PER_CALLER, minimum=1
)
CODE_INTERPRETER_WARM_IDLE_S = env_float(
    "CODE_INTERPRETER_WARM_IDLE_S", sandbox_defaults.WARM_IDLE_S
)
# LibreChat's stateful profile: how long an execution waits for another one holding the same
# runtime_session_hint before it is refused as runtime_session_busy (409).
CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S = env_float("CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S", 10.0)
# The sandbox itself (code_interpreter/sandbox/command.py; installed by scripts/install-sandbox.sh).
CODE_INTERPRETER_BWRAP = env_str("CODE_INTERPRETER_BWRAP", "bwrap")
CODE_INTERPRETER_RUNTIME_DIR = Path(
    env_str("CODE_INTERPRETER_RUNTIME_DIR", str(VAR_DIR / "sandbox-runtime"))
)
CODE_INTERPRETER_MAX_OPEN_FILES = env_int(
    "CODE_INTERPRETER_MAX_OPEN_FILES", sandbox_defaults.MAX_OPEN_FILES, minimum=16
)
CODE_INTERPRETER_TMP_BYTES = env_int("CODE_INTERPRETER_TMP_BYTES", 256 * 1024**2, minimum=1)
CODE_INTERPRETER_SHM_BYTES = env_int("CODE_INTERPRETER_SHM_BYTES", 64 * 1024**2, minimum=1)
# Memory per execution (code_interpreter/sandbox/memory.py): "auto" uses our cgroup v2 when it is
# the root of a cgroup namespace of our own (a container's), "off" never uses one, or the path
# of a cgroup delegated to us to make per-sandbox cgroups in. Without a cgroup, a supervisor
# samples each sandbox at least every MEMORY_POLL_S seconds (more often near the limit).
CODE_INTERPRETER_CGROUP = env_str("CODE_INTERPRETER_CGROUP", "auto")
CODE_INTERPRETER_MEMORY_POLL_S = env_float("CODE_INTERPRETER_MEMORY_POLL_S", 0.05)
# Code runs as a host uid from this range (per session) when the service runs as root.
CODE_INTERPRETER_SANDBOX_UID_BASE = env_int("CODE_INTERPRETER_SANDBOX_UID_BASE", 1_000_000_000)
CODE_INTERPRETER_SANDBOX_UID_SPAN = env_int("CODE_INTERPRETER_SANDBOX_UID_SPAN", 100_000)
# Where files are stored: local under MEDIA_ROOT, or any Django storage backend (S3-compatible
# with django-storages: BACKEND=storages.backends.s3.S3Storage, OPTIONS as JSON).
STORAGES["code_interpreter"] = {
    "BACKEND": env_str(
        "CODE_INTERPRETER_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
    ),
    "OPTIONS": json.loads(env_str("CODE_INTERPRETER_STORAGE_OPTIONS") or "null")
    or {"location": str(MEDIA_ROOT / "code_interpreter"), "base_url": None},
}
