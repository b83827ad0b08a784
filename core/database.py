"""The app database is there before anything waits for it.

On PostgreSQL a database that does not exist yet (the README's "point it at real services" on a
fresh server) used to show as psycopg_pool's "couldn't get a connection after 30.00 sec", thirty
seconds after start, hiding the cause. So the processes that start the app ask first, with one
direct connection and a short timeout: ``manage.py migrate`` creates the database when it is
missing (as DBOS creates its own system database), and everything else stops at once with the
real reason and the command that fixes it.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from psycopg import sql

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
# Django's own OPTIONS, not libpq's.
_DJANGO_OPTIONS = {"pool", "isolation_level", "assume_role", "server_side_binding"}


class DatabaseUnavailable(ImproperlyConfigured):
    """The app database cannot be used; the message says why and what to run."""


def _connect_params(settings_dict: dict[str, Any], dbname: str) -> dict[str, Any]:
    options = {
        k: v for k, v in settings_dict.get("OPTIONS", {}).items() if k not in _DJANGO_OPTIONS
    }
    params: dict[str, Any] = {**options, "dbname": dbname, "connect_timeout": CONNECT_TIMEOUT_S}
    for key, name in (
        ("USER", "user"),
        ("PASSWORD", "password"),
        ("HOST", "host"),
        ("PORT", "port"),
    ):
        if settings_dict.get(key):
            params[name] = settings_dict[key]
    return params


def _server(settings_dict: dict[str, Any]) -> tuple[str, Any, str]:
    host = settings_dict.get("HOST") or "localhost"
    return host, settings_dict.get("PORT") or 5432, settings_dict.get("USER") or "postgres"


def ensure_app_database(*, create: bool, alias: str = "default") -> bool:
    """Check that the app database exists (PostgreSQL only); with ``create``, create it when it
    does not. Returns True if it was created; raises DatabaseUnavailable otherwise."""
    settings_dict = connections[alias].settings_dict
    if settings_dict["ENGINE"] != "django.db.backends.postgresql":
        return False
    name = str(settings_dict["NAME"])
    try:
        psycopg.connect(**_connect_params(settings_dict, name)).close()
        return False
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        missing = f'database "{name}" does not exist' in str(exc)
    host, port, user = _server(settings_dict)
    where = f"{user}@{host}:{port}"
    if not missing:
        raise DatabaseUnavailable(
            f"Cannot connect to the app database {name} at {where}: {reason}. Check "
            "DATABASE_URL (host, port, user, password) and that PostgreSQL is running."
        )
    createdb = f"createdb -h {host} -p {port} -U {user} {name}"
    if not create:
        raise DatabaseUnavailable(
            f"The app database {name} does not exist on {where}. Create it with "
            f"`manage.py migrate` (which creates a missing database) or `{createdb}`."
        )
    try:
        with psycopg.connect(**_connect_params(settings_dict, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"The app database {name} does not exist on {where}, and creating it failed: "
            f"{str(exc).strip()}. Create it as a user allowed to: `{createdb}`."
        ) from None
    logger.info("created the app database %s on %s", name, where)
    return True
