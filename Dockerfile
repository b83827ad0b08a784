# syntax=docker/dockerfile:1
# The Hestami AI image: the Django app (uvicorn, Celery worker and beat, `manage.py run_workflows`)
# and the code interpreter's sandbox (bubblewrap with its own runtime in /opt/runtime).
# Build: docker build -t hestami-ai .   Run it with compose: docs/deployment.md. The sandbox needs
# user namespaces from the container runtime (security_opt in compose.dev.yaml; docs/security.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- The app's dependencies, installed from pyproject.toml ------------------------------------
FROM ${PYTHON_IMAGE} AS app-build
# Optional extras from pyproject.toml: `s3` lets CODE_INTERPRETER_STORAGE_BACKEND=s3 work in the
# image (django-storages + boto3). Build with --build-arg EXTRAS= for the smallest image.
ARG EXTRAS=s3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY hestami_ai ./hestami_ai
COPY core ./core
COPY librechat ./librechat
COPY users ./users
COPY chat ./chat
COPY code_interpreter ./code_interpreter
# `pip install .[extras]` resolves and installs what pyproject.toml declares. The project itself then runs
# from /app (its templates/, manage.py and static files live there, and BASE_DIR points there),
# so its installed copy is removed again rather than shadowing /app.
RUN /opt/venv/bin/pip install ".${EXTRAS:+[$EXTRAS]}" && /opt/venv/bin/pip uninstall --yes hestami-ai

# --- Debian's node, npm and Python: what the two install scripts below expect -----------------
FROM ${PYTHON_IMAGE} AS node-tools
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bubblewrap nodejs npm python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# --- The sandbox's runtime: a Python venv (from Debian's /usr python) with numpy, pandas, ...,
# esbuild for TypeScript, its /etc and matplotlib's font cache. Installed straight into
# /opt/runtime, the path the sandbox mounts it at; bubblewrap cannot run during a build
# (no namespaces), hence SANDBOX_BUILD_ONLY. The service checks a real sandbox when it starts.
FROM node-tools AS sandbox-build
COPY scripts/install-sandbox.sh ./scripts/
COPY code_interpreter/runtime ./code_interpreter/runtime
RUN SANDBOX_BUILD_ONLY=1 bash scripts/install-sandbox.sh /opt/runtime

# --- The chat UI's browser libraries (scripts/install-frontend.sh -> frontend/vendor/) --------
FROM node-tools AS frontend-build
COPY scripts/install-frontend.sh ./scripts/
COPY frontend/package.json frontend/package-lock.json ./frontend/
RUN bash scripts/install-frontend.sh

# --- The image --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# bubblewrap runs the sandbox; the sandbox mounts /usr, so node and the python3.11 its runtime's
# venv was made from must be Debian's (under /usr, not /usr/local). tini reaps the sandbox's
# orphans and forwards signals (uvicorn, celery and run_workflows shut down cleanly on SIGTERM).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bubblewrap python3 tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home hestami
# Node.js 22 from its official image, not bookworm's 18: it runs a `.js` file with `import`
# statements as an ES module, as LibreChat's users expect. Copied to /usr/bin, which the
# sandbox mounts (the binary needs only glibc and libstdc++, both in this base).
COPY --from=node:22-bookworm-slim /usr/local/bin/node /usr/bin/node

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=hestami_ai.settings \
    VAR_DIR=/app/var \
    CODE_INTERPRETER_RUNTIME_DIR=/opt/runtime \
    CODE_INTERPRETER_SESSIONS_DIR=/app/var/code-sessions

COPY --from=app-build /opt/venv /opt/venv
COPY --from=sandbox-build /opt/runtime /opt/runtime
WORKDIR /app
# The source (see .dockerignore), owned by root: the app user cannot change its own code.
COPY . .
COPY --from=frontend-build /src/frontend/vendor ./frontend/vendor

# Static files are collected now, into the image (served by ServeStatic from the ASGI app). The
# settings refuse to load without secrets when DEBUG is off; collectstatic uses none of them, so
# placeholders are given for this one command only. var/ is the app's only writable directory:
# media/ and code-sessions/ are volumes (compose.dev.yaml), the beat schedule lives in var/.
RUN SECRET_KEY=collectstatic JWT_SIGNING_KEY=collectstatic LIBRECHAT_ENCRYPTION_KEY=collectstatic \
        python manage.py collectstatic --noinput -v 0 \
    && python -m compileall -q hestami_ai core librechat users chat code_interpreter \
    && mkdir -p var/media var/code-sessions \
    && chown hestami:hestami var var/media var/code-sessions

USER hestami
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--"]
# As in the Procfile's web role. Celery, beat and run_workflows override the command (compose).
CMD ["uvicorn", "hestami_ai.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off"]
# Liveness of the web role (core/health.py); the other roles define their own in compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
