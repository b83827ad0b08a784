"""Checks of a compose project against the code. Each returns its problems as sentences (empty:
fine), so a test can show they pass on our files and fail on a deliberately broken copy.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.deploy.compose import ROOT, Doc, volume_mounts

# Ports the official images listen on, for URLs that point at them.
IMAGE_PORTS = {"postgres": 5432, "redis": 6379, "mongo": 27017, "getmeili/meilisearch": 7700}
SCHEME_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "redis": 6379}
# Where the stateful images keep their data: a named volume must be mounted there.
IMAGE_DATA_DIRS = {
    "postgres": ["/var/lib/postgresql/data"],
    "redis": ["/data"],
    "mongo": ["/data/db"],
    "getmeili/meilisearch": ["/meili_data"],
    "ghcr.io/danny-avila/librechat": ["/app/uploads", "/app/client/public/images"],
}


def services(project: Doc) -> dict[str, Doc]:
    found: dict[str, Doc] = project.get("services") or {}
    return found


def app_services(project: Doc) -> dict[str, Doc]:
    """The services built from our Dockerfile."""
    return {name: service for name, service in services(project).items() if "build" in service}


def long_running(service: Doc) -> bool:
    return str(service.get("restart", "no")) != "no"


def image_name(service: Doc) -> str:
    """The image without its tag or digest: ``postgres:17-bookworm`` is ``postgres``."""
    image = str(service.get("image", "")).split("@", 1)[0]
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def command(service: Doc) -> list[str]:
    value = service.get("command") or []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def environment(service: Doc) -> dict[str, str]:
    return {key: value for key, value in (service.get("environment") or {}).items() if value}


# -- healthchecks, dependencies, volumes -------------------------------------------------------


def healthcheck_problems(project: Doc) -> list[str]:
    problems = []
    for name, service in services(project).items():
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if long_running(service) and (
            check.get("disable") or not test or test in ("NONE", ["NONE"])
        ):
            problems.append(f"{name}: a long-running service without a healthcheck")
    return problems


def depends_on_problems(project: Doc) -> list[str]:
    problems = []
    known = services(project)
    for name, service in known.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = (spec or {}).get("condition", "service_started")
            if dependency not in known:
                problems.append(f"{name}: depends on {dependency}, which is not a service")
            elif condition == "service_healthy" and not known[dependency].get("healthcheck"):
                problems.append(f"{name}: waits for {dependency} to be healthy; it has no check")
            elif condition == "service_completed_successfully" and long_running(known[dependency]):
                problems.append(f"{name}: waits for {dependency} to complete; it restarts")
        if long_running(service) and "build" in service and "postgres" in known:
            waits_for = service.get("depends_on") or {}
            if "migrate" in known and "migrate" not in waits_for:
                problems.append(f"{name}: starts without waiting for the migrate service")
    return problems


def volume_problems(project: Doc, root: Path = ROOT) -> list[str]:
    problems = []
    declared = set(project.get("volumes") or {})
    used = set()
    for name, service in services(project).items():
        targets = set()
        for mount in volume_mounts(service):
            targets.add(mount["target"])
            if mount["type"] == "volume":
                if not mount["source"]:
                    problems.append(f"{name}: an anonymous volume at {mount['target']}")
                elif mount["source"] not in declared:
                    problems.append(f"{name}: volume {mount['source']} is not declared")
                used.add(mount["source"])
            elif mount["type"] == "bind" and not (root / mount["source"]).exists():
                problems.append(f"{name}: bind mount {mount['source']} does not exist")
        for prefix, data_dirs in IMAGE_DATA_DIRS.items():
            if image_name(service) == prefix:
                problems += [
                    f"{name}: no volume at {target}, where {prefix} keeps its data"
                    for target in data_dirs
                    if target not in targets
                ]
        for env_file in service.get("env_file") or []:
            path, required = (
                (env_file, True)
                if isinstance(env_file, str)
                else (env_file["path"], env_file.get("required", True))
            )
            if required and not (root / path).exists():
                problems.append(f"{name}: env_file {path} does not exist")
    problems += [f"volume {volume} is declared but unused" for volume in sorted(declared - used)]
    return problems


def app_volume_problems(project: Doc, data_dirs: Mapping[str, list[str]]) -> list[str]:
    """Each app service mounts a volume at each directory it writes (from the settings)."""
    problems = []
    for name, service in app_services(project).items():
        mounted = {m["target"] for m in volume_mounts(service) if m["type"] == "volume"}
        problems += [
            f"{name}: writes {target} but no volume is mounted there"
            for target in data_dirs.get(name, [])
            if target not in mounted
        ]
    return problems


# -- URLs and ports ----------------------------------------------------------------------------


def listening_ports(service: Doc) -> set[int]:
    ports = set()
    for mapping in service.get("ports") or []:
        target = mapping.get("target") if isinstance(mapping, dict) else str(mapping).split(":")[-1]
        ports.add(int(str(target).split("/")[0]))
    argv = command(service)
    if "--port" in argv:
        ports.add(int(argv[argv.index("--port") + 1]))
    if environment(service).get("PORT", "").isdigit():
        ports.add(int(environment(service)["PORT"]))
    if image_name(service) in IMAGE_PORTS:
        ports.add(IMAGE_PORTS[image_name(service)])
    return ports


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s,]+")


def url_problems(project: Doc) -> list[str]:
    """Every URL in a service's environment names a service (or an extra host) and its port."""
    problems = []
    known = services(project)
    for name, service in known.items():
        extra_hosts = {entry.split(":", 1)[0] for entry in service.get("extra_hosts") or []}
        for variable, value in environment(service).items():
            for url in _URL.findall(value):
                parts = urlsplit(url)
                host, where = parts.hostname or "", f"{name}: {variable}={url}"
                if host in ("localhost", "127.0.0.1", "::1"):
                    problems.append(f"{where} points at the container itself")
                elif host in extra_hosts:
                    continue
                elif host not in known:
                    problems.append(f"{where} names {host}, which is not a service")
                else:
                    port = parts.port or SCHEME_PORTS.get(parts.scheme)
                    listening = listening_ports(known[host])
                    if listening and port not in listening:
                        problems.append(f"{where}: {host} listens on {sorted(listening)}")
    return problems


# -- commands refer to real code ---------------------------------------------------------------


def module_defines(module: str, name: str) -> bool:
    """Whether ``module`` (a file of this project) defines ``name`` at its top level."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    tree = ast.parse(Path(spec.origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return True
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            return True
    return False


def argv_problems(argv: list[str]) -> list[str]:
    from django.core.management import get_commands

    if not argv:
        return ["no command"]
    program, args = argv[0], argv[1:]
    if program == "uvicorn":
        target = next((arg for arg in args if not arg.startswith("-")), "")
        module, _, attribute = target.partition(":")
        if not module_defines(module, attribute):
            return [f"uvicorn serves {target}, which does not exist"]
    elif program == "celery":
        module = args[args.index("-A") + 1] if "-A" in args else ""
        if not module_defines(module, "app"):
            return [f"celery -A {module}: no Celery app there"]
        rest = args[args.index("-A") + 2 :]
        if not rest or rest[0] not in {"worker", "beat", "inspect"}:
            return [f"celery {' '.join(rest)}: not a role we run"]
    elif program == "python" and args[:1] == ["manage.py"]:
        if len(args) < 2 or args[1] not in get_commands():
            return [f"manage.py {' '.join(args[1:2])}: no such command"]
    elif program == "python" and args[:1] == ["-c"]:
        compile(args[1], "<healthcheck>", "exec")
    else:
        return [f"{' '.join(argv)}: not a command this image runs"]
    return []


def command_problems(project: Doc) -> list[str]:
    """Our services' commands and healthchecks name modules, apps and commands that exist."""
    problems = []
    for name, service in app_services(project).items():
        problems += [f"{name}: {problem}" for problem in argv_problems(command(service))]
        test = (service.get("healthcheck") or {}).get("test") or []
        if isinstance(test, list) and test[:1] == ["CMD"]:
            problems += [f"{name} healthcheck: {p}" for p in argv_problems(test[1:])]
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"]:
            problems += [f"{name} healthcheck: {p}" for p in argv_problems(shlex.split(test[1]))]
    return problems


# -- the settings each app service gets --------------------------------------------------------


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ENV of the Dockerfile's last stage (what every container starts with)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    env: dict[str, str] = {}
    for line in lines[last_from:]:
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                if "$" not in value:
                    env[key] = value
    return env


def container_env(service: Doc, image_env: Mapping[str, str]) -> dict[str, str]:
    return {**image_env, **environment(service)}


_REPORT = """
import json, sys
import django
from django.core.exceptions import ImproperlyConfigured
try:
    django.setup()
    from django.conf import settings
    from django.core.checks import run_checks
    problems = [f"{m.id}: {m.msg}" for m in run_checks() if m.is_serious()]
except ImproperlyConfigured as exc:
    print(json.dumps({"problems": [f"ImproperlyConfigured: {exc}"]}))
    sys.exit(0)
names = ["DEBUG", "ALLOWED_HOSTS", "LIBRECHAT_API_URL", "MEDIA_ROOT",
         "CODE_INTERPRETER_SESSIONS_DIR", "CODE_INTERPRETER_RUNTIME_DIR", "CODE_INTERPRETER_AUTH",
         "CODE_INTERPRETER_JWT_PUBLIC_KEY", "CODE_INTERPRETER_JWT_ALGORITHMS",
         "CODE_INTERPRETER_JWT_ISSUER", "CODE_INTERPRETER_JWT_AUDIENCE",
         "CODE_INTERPRETER_JWT_MAX_LIFETIME_S", "DBOS_SYSTEM_DATABASE_URL",
         "LIBRECHAT_FORWARD_CLIENT_IP", "THROTTLE_RATES"]
values = {name: getattr(settings, name) for name in names}
print(json.dumps({"problems": problems, "settings": values}, default=str))
"""


@cache
def _settings_report(env_items: tuple[tuple[str, str], ...]) -> Doc:
    env = dict(env_items)
    image_var_dir = env.get("VAR_DIR", "")
    with tempfile.TemporaryDirectory(prefix="compose-settings-") as var_dir:
        # The settings create VAR_DIR/staticfiles: a temporary directory stands in for /app/var.
        run_env = {"PATH": os.environ["PATH"], **env, "VAR_DIR": var_dir}
        done = subprocess.run(  # our own interpreter and a fixed script
            [sys.executable, "-c", _REPORT],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            return {"problems": [f"the settings crashed: {done.stderr.strip()[-2000:]}"]}
        report: Doc = json.loads(done.stdout.strip().splitlines()[-1])
    for name, value in (report.get("settings") or {}).items():
        if isinstance(value, str) and image_var_dir and value.startswith(var_dir):
            report["settings"][name] = image_var_dir + value[len(var_dir) :]
    return report


def settings_report(env: Mapping[str, str]) -> Doc:
    """Load our settings (DEBUG off) and run the system checks in a process with just ``env``.

    ``problems`` lists an ImproperlyConfigured (a required setting missing) and every serious
    system check message; ``settings`` holds the values the other checks compare.
    """
    return _settings_report(tuple(sorted(env.items())))


def settings_problems(env: Mapping[str, str]) -> list[str]:
    report = settings_report(env)
    problems: list[str] = list(report["problems"])
    if report.get("settings", {}).get("DEBUG"):
        problems.append("DEBUG is on: secrets would fall back to development values")
    return problems


# -- LibreChat behind a backend-for-frontend ---------------------------------------------------

LIBRECHAT_IMAGE = "ghcr.io/danny-avila/librechat"
CODE_API_PATH = "/api/code/v1"
STATEFUL_CODE_API_PATH = "/api/code/stateful/v1"  # LibreChat v0.8.8's stateful profile
_PERIOD_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# LibreChat's per-IP limiters (its .env.example defaults) and the throttle of ours each must admit.
_LIMITERS = [
    ("LOGIN_MAX", 7, "LOGIN_WINDOW", 5, "login_ip"),
    ("REGISTER_MAX", 5, "REGISTER_WINDOW", 60, "register_ip"),
]


def per_second(rate: str) -> float:
    """DRF's ``10/hour`` (or ``20/min``) as requests per second."""
    count, _, period = rate.partition("/")
    return int(count) / _PERIOD_S[period[0]]


def librechat_problems(project: Doc, web_settings: Mapping[str, Any]) -> list[str]:
    """What a BFF needs from LibreChat's settings (docs/deployment.md, contract A5 and C1)."""
    found = [s for s in services(project).values() if image_name(s) == LIBRECHAT_IMAGE]
    if len(found) != 1:
        return [f"{len(found)} LibreChat services"]
    env = environment(found[0])
    problems = []
    if env.get("ALLOW_REGISTRATION") != "true":
        problems.append("ALLOW_REGISTRATION is not exactly true: provisioning gets 403")
    if env.get("TRUST_PROXY") != "1" or not web_settings["LIBRECHAT_FORWARD_CLIENT_IP"]:
        problems.append(
            "LibreChat must trust one hop (TRUST_PROXY=1: us, forwarding the client's IP)"
        )
    # What librechat_doctor checks too: LibreChat must admit, per address and window, at least
    # what our own throttle lets through, or users hit LibreChat's 429 behind ours.
    for their_max, default_max, their_window, default_window, ours in _LIMITERS:
        window_s = 60 * int(env.get(their_window, default_window))
        needed = math.ceil(per_second(web_settings["THROTTLE_RATES"][ours]) * window_s)
        if int(env.get(their_max, default_max)) < needed:
            problems.append(f"{their_max} is below {needed}, what our {ours} throttle admits")
    code_url = urlsplit(env.get("LIBRECHAT_CODE_BASEURL", ""))
    if code_url.hostname not in app_services(project) or code_url.path != CODE_API_PATH:
        problems.append(f"LIBRECHAT_CODE_BASEURL is not our web service's {CODE_API_PATH}")
    elif code_url.hostname not in web_settings["ALLOWED_HOSTS"]:
        problems.append(f"ALLOWED_HOSTS lacks {code_url.hostname}: LibreChat's calls get 400")
    stateful_url = urlsplit(env.get("LIBRECHAT_CODE_BASEURL_STATEFUL", ""))
    if (stateful_url.hostname, stateful_url.path) != (code_url.hostname, STATEFUL_CODE_API_PATH):
        problems.append(f"LIBRECHAT_CODE_BASEURL_STATEFUL is not our {STATEFUL_CODE_API_PATH}")
    signs = env.get("CODEAPI_AUTH_PROVIDER") in {"librechat-jwt", "both"} or env.get(
        "CODEAPI_JWT_ENABLED"
    ) in {"true", "1"}
    if not signs or "jwt" not in web_settings["CODE_INTERPRETER_AUTH"]:
        problems.append("LibreChat does not sign Code API JWTs, or we do not check them")
    pairs = [
        ("CODEAPI_JWT_ISSUER", "librechat", "CODE_INTERPRETER_JWT_ISSUER"),
        ("CODEAPI_JWT_AUDIENCE", "codeapi", "CODE_INTERPRETER_JWT_AUDIENCE"),
    ]
    for theirs, default, ours in pairs:
        if env.get(theirs, default) != web_settings[ours]:
            problems.append(f"{theirs} differs from our {ours}")
    if (
        env.get("CODEAPI_JWT_ALGORITHM", "EdDSA")
        not in web_settings["CODE_INTERPRETER_JWT_ALGORITHMS"]
    ):
        problems.append("CODEAPI_JWT_ALGORITHM is not in our CODE_INTERPRETER_JWT_ALGORITHMS")
    if (
        int(env.get("CODEAPI_JWT_TTL_SECONDS", 300))
        > web_settings["CODE_INTERPRETER_JWT_MAX_LIFETIME_S"]
    ):
        problems.append("CODEAPI_JWT_TTL_SECONDS exceeds our CODE_INTERPRETER_JWT_MAX_LIFETIME_S")
    for setting in ("LIBRECHAT_CODE_BASEURL", "LIBRECHAT_CODE_BASEURL_STATEFUL"):
        differ = [
            name
            for name, service in app_services(project).items()
            if environment(service).get(setting) != env.get(setting)
        ]
        if differ:
            problems.append(f"{setting} differs from LibreChat's in: {', '.join(differ)}")
    for name, service in app_services(project).items():
        api = urlsplit(environment(service).get("LIBRECHAT_API_URL", ""))
        if (
            api.hostname not in services(project)
            or image_name(services(project)[api.hostname]) != LIBRECHAT_IMAGE
        ):
            problems.append(f"{name}: LIBRECHAT_API_URL does not point at the LibreChat service")
    return problems
