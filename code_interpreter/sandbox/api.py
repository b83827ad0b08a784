"""The sandbox's entry points: is it ready, which languages run here, run this code.

If bubblewrap or the runtime is missing, ``sandbox_status()`` says what to install and
``execute()`` raises ``SandboxUnavailable``: there is no unsandboxed fallback.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.core import checks

from code_interpreter.sandbox.command import (
    ALIASES,
    LANGUAGES,
    Config,
    language_available,
    load_config,
    uid_range,
)
from code_interpreter.sandbox.limits import (
    ExecutionResult,
    Limits,
    SandboxError,
    SandboxUnavailable,
)
from code_interpreter.sandbox.memory import memory_enforcement
from code_interpreter.sandbox.run import execute_in

DEFAULT_LIMITS = Limits()  # frozen: safe as a default argument

# -- readiness and languages -------------------------------------------------------------------

_probed: set[Config] = set()
_probe_lock = threading.Lock()


def _missing(config: Config) -> str | None:
    if config.bwrap is None:
        return (
            "bubblewrap (bwrap) is not installed, so code execution is disabled. "
            "Install it with `apt-get install -y bubblewrap` or run `make sandbox`."
        )
    if config.as_root and not config.has_dropuid and not os.access("/usr/bin/setpriv", os.X_OK):
        return "/usr/bin/setpriv is missing: install it with `apt-get install -y util-linux`."
    if not os.access("/usr/bin/node", os.X_OK):
        return "Node.js is missing: run `make sandbox` or `apt-get install -y nodejs`."
    runtime = config.runtime_dir
    if not (
        os.access(config.python, os.X_OK)
        and (runtime / "etc" / "passwd").is_file()
        and (runtime / "empty").is_dir()
    ):
        return f"The sandbox runtime is missing in {runtime}: run `make sandbox`."
    return None


def sandbox_status() -> tuple[bool, str]:
    """(ready, message) for start-up checks and /readyz; runs one real sandbox the first time."""
    config = load_config()
    problem = unready(config)
    if problem:
        return False, problem
    names = ", ".join(available_languages())
    memory = memory_enforcement().describe()
    return True, f"Sandbox ready (bubblewrap {config.bwrap}; languages: {names}; {memory})."


def unready(config: Config) -> str | None:
    """What keeps the sandbox from running, if anything (the self-test passes once per config)."""
    problem = _missing(config)
    if problem or config in _probed:
        return problem
    with _probe_lock:
        if config not in _probed:
            problem = _probe(config)
            if problem is None:
                _probed.add(config)
    return problem


def _probe(config: Config) -> str | None:
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as probe_dir:
        limits = Limits(timeout_s=20.0)
        try:
            result = execute_in(
                config, "bash", 'test -w "$PWD" && exit 0', (), Path(probe_dir), limits, None
            )
        except SandboxError as exc:
            return f"bubblewrap cannot start a sandbox here: {exc}"
    if result.status != "ok":
        return f"The sandbox's self-test failed ({result.status}): {result.stderr.strip()[-500:]}"
    return None


def check_sandbox(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """A Django system check (register it in the app's ready()): what is missing, at start."""
    ready, message = sandbox_status()
    if ready:
        return []
    hint = "Code execution is refused until then; `make sandbox` installs what is missing."
    return [checks.Warning(message, hint=hint, id="code_interpreter.W001")]


def available_languages() -> dict[str, str]:
    """Canonical language -> description, for the languages whose toolchain is installed."""
    config = load_config()
    return {
        name: lang.description
        for name, lang in LANGUAGES.items()
        if language_available(lang, config)
    }


def canonical_language(lang: str) -> str | None:
    """The canonical name of a language or alias ("python3" is "py", "node" is "js", "sh" is
    "bash"), or None when it is unknown or its toolchain is not installed here."""
    return resolve_language(lang, load_config())


def resolve_language(lang: str, config: Config) -> str | None:
    name = lang.strip().lower()
    name = ALIASES.get(name, name)
    if name in LANGUAGES and language_available(LANGUAGES[name], config):
        return name
    return None


# -- execution ---------------------------------------------------------------------------------


def execute(
    *,
    lang: str,
    code: str,
    args: Sequence[str] = (),
    workdir: Path,
    limits: Limits = DEFAULT_LIMITS,
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> ExecutionResult:
    """Run ``code`` in a fresh sandbox with ``workdir`` at /mnt/data (also its working directory).

    Under a root-run service the code runs as host ``uid``: the session's own (one live session
    per uid, ``services`` allocates them); without one, as ``Config.scratch_uid``.

    Raises ValueError for an unsupported language or a bad argument, SandboxUnavailable when
    the sandbox is not installed, and SandboxError when it could not start.
    """
    config = load_config()
    problem = unready(config)
    if problem:
        raise SandboxUnavailable(problem)
    name = resolve_language(lang, config)
    if name is None:
        raise ValueError(f"Unsupported language: {lang}")
    return execute_in(config, name, code, tuple(args), Path(workdir), limits, env, uid)


def session_uids() -> range | None:
    """The host uids sessions' code may run as (root mode), or None (user namespaces)."""
    if os.geteuid() != 0:
        return None
    base, span = uid_range()
    return range(base, base + span)
