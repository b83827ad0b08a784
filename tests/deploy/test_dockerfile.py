"""The Dockerfile against the code and compose.dev.yaml (no Docker engine runs here)."""

from __future__ import annotations

import fnmatch
import json
import re

from django.urls import resolve

from tests.deploy.checks import command
from tests.deploy.compose import DOCKERFILE, ROOT, Doc

DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each line, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip()[:1] not in ("", "#")
    ]
    return any(fnmatch.fnmatch(path.rstrip("/"), pattern) for pattern in patterns)


def dockerfile_problems(text: str, web_command: list[str]) -> list[str]:
    steps = instructions(text)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    final = steps[last_from:]
    problems = []
    for keyword, args in steps:
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                if source.startswith("--"):
                    continue
                if source != "." and (not (ROOT / source).exists() or ignored(source)):
                    problems.append(f"COPY {source}: not in the build context")
    users = [args for keyword, args in final if keyword == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("the image runs as root")
    cmd = [json.loads(args) for keyword, args in final if keyword == "CMD"]
    if not cmd or cmd[-1] != web_command:
        problems.append(f"CMD {cmd[-1] if cmd else None} is not compose's web command")
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    paths = re.findall(
        r"http://127\.0\.0\.1:8000(/[^'\"]*)", healthchecks[-1] if healthchecks else ""
    )
    if not paths:
        problems.append("no HEALTHCHECK on the web port")
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    for script in ("install-sandbox.sh", "install-frontend.sh"):
        if (ROOT / "scripts" / script).exists() and f"scripts/{script}" not in runs:
            problems.append(f"scripts/{script} is not run")
    if "collectstatic" not in " ".join(args for keyword, args in final if keyword == "RUN"):
        problems.append("static files are not collected into the image")
    return problems


def test_the_dockerfile_matches_the_code(dev_project: Doc) -> None:
    web = command(dev_project["services"]["web"])
    assert dockerfile_problems(DOCKERFILE.read_text(), web) == []


def test_a_broken_dockerfile_is_caught(dev_project: Doc) -> None:
    text = DOCKERFILE.read_text()
    text = text.replace("USER hestami\n", "")
    text = text.replace("COPY pyproject.toml ./", "COPY pyproject.toml var/ ./")
    text = text.replace("RUN bash scripts/install-frontend.sh", "RUN true")
    text = text.replace('"--lifespan", "off"]', '"--workers", "4"]')

    assert dockerfile_problems(text, command(dev_project["services"]["web"])) == [
        "COPY var/: not in the build context",
        "the image runs as root",
        "CMD ['uvicorn', 'hestami_ai.asgi:application', '--host', '0.0.0.0', '--port', '8000', "
        "'--workers', '4'] is not compose's web command",
        "scripts/install-frontend.sh is not run",
    ]


def test_the_healthchecks_probe_routes_that_exist(dev_project: Doc) -> None:
    probes = re.findall(r"127\.0\.0\.1:8000(/[\w/-]*)", DOCKERFILE.read_text())
    probes += re.findall(r"127\.0\.0\.1:8000(/[\w/-]*)", str(dev_project["services"]["web"]))
    assert probes
    for path in probes:
        resolve(path)  # Resolver404 when the route does not exist
