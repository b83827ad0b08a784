"""LibreChat's real client against our server on loopback: @librechat/agents as LibreChat
v0.8.7 pins it (3.2.57) and the 3.9 line LibreChat v0.8.8 uses (3.9.2, the newest on npm; v0.8.8
asks for ^3.9.7, not yet published), the latter with its execution profiles.

The npm install happens here on first use (cached in tests/code_interpreter/npm/node_modules,
git-ignored, and redone only when package-lock.json changes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_django import Settings

from tests.code_interpreter.conftest import USER, AppServer, KeyPair
from tests.code_interpreter.test_librechat_replay import assert_png

NPM_DIR = Path(__file__).parent / "npm"
# LibreChat version -> the package name its client is installed under (npm/package.json).
CLIENTS = {"v0.8.7": "@librechat/agents", "v0.8.8": "agents-v088"}
HINT = "v2:user:0f1e2d3c4b5a69788796a5b4c3d2e1f0"
STAMP = NPM_DIR / "node_modules" / ".hestami-lock-sha256"
CHART = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.bar(['a', 'b'], [3, 5])\nplt.savefig('/mnt/data/chart.png')\nprint('saved')"
)
CAT_NOTE = (
    "try:\n    print(open('/mnt/data/note.txt').read().strip())\n"
    "except FileNotFoundError as exc:\n    print('No such file:', exc.filename)"
)


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "npm"], check=True, timeout=900)
        npm = shutil.which("npm")
    assert npm, "npm is required: apt-get install -y npm"
    return npm


@pytest.fixture(scope="module")
def agents_client() -> Path:
    """node_modules for run_tool.js, installed once per package-lock.json."""
    lock = hashlib.sha256((NPM_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        subprocess.run(
            [_npm(), "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=NPM_DIR,
            check=True,
            timeout=900,
        )
        STAMP.write_text(lock)
    return NPM_DIR


@pytest.fixture(params=list(CLIENTS))
def librechat(request: pytest.FixtureRequest, agents_client: Path) -> str:
    """Which LibreChat's client a test runs, for every test that takes it."""
    return str(request.param)


def run_tools(
    server: AppServer,
    steps: list[dict[str, Any]],
    *,
    librechat: str,
    authorization: str | None = None,
    parallel: bool = False,
    stateful_url: str | None = None,
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "AGENTS_PACKAGE": CLIENTS[librechat],
        "LIBRECHAT_CODE_BASEURL": server.base_url,
        "LIBRECHAT_CODE_BASEURL_STATEFUL": stateful_url or f"{server.url}/api/code/stateful/v1",
        "LIBRECHAT_USER_ID": USER,
        "RUN_PARALLEL": "1" if parallel else "",
    }
    if authorization:
        env["CODE_API_AUTHORIZATION"] = authorization
    result = subprocess.run(
        ["node", "run_tool.js"],
        cwd=NPM_DIR,
        input=json.dumps(steps),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def default_profile(librechat: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """v0.8.8 builds every code tool with an execution profile: ``default`` unless the agent
    has stateful code sessions (execution.ts resolveCodeExecutionContext)."""
    return [{"profile": "default", **step} if librechat == "v0.8.8" else step for step in steps]


def test_execute_code_and_bash_tool_with_a_chart(librechat: str, app_server: AppServer) -> None:
    printed, chart, bash = run_tools(
        app_server,
        default_profile(
            librechat,
            [
                {"tool": "execute_code", "args": {"lang": "py", "code": "print(6 * 7)"}},
                {"tool": "execute_code", "args": {"lang": "py", "code": CHART}},
                {"tool": "bash_tool", "args": {"command": "python3 -c 'print(1 + 1)'; echo ok"}},
            ],
        ),
        librechat=librechat,
    )
    assert printed["content"] == "stdout:\n42", printed
    assert "files" not in printed["artifact"]
    assert len(printed["artifact"]["session_id"]) == 21

    assert chart["content"].startswith("stdout:\nsaved\n\nGenerated files:\nSession files: 1 ")
    assert "including 1 image(s)" in chart["content"]
    [listed] = chart["artifact"]["files"]
    assert listed["name"] == "chart.png"
    [download] = chart["downloads"]
    assert download["status"] == 200
    assert download["contentType"] == "image/png"
    assert download["contentDisposition"] == 'attachment; filename="chart.png"'
    assert download["executionProfile"] == "default"
    assert_png(base64.b64decode(download["base64"]))

    assert bash["tool"] == "bash_tool"
    assert bash["content"] == "stdout:\n2\nok"


def test_errors_reach_the_model_readably(librechat: str, app_server: AppServer) -> None:
    [unsupported] = run_tools(
        app_server,
        default_profile(
            librechat, [{"tool": "execute_code", "args": {"lang": "rs", "code": "fn main() {}"}}]
        ),
        librechat=librechat,
    )
    if librechat == "v0.8.7":  # a non-2xx reply becomes the tool's error text, body included
        assert "returned 400" in unsupported["error"]
        assert "Unsupported language: rs" in unsupported["error"]
    else:  # 3.9 keeps the body from the model and names the class of failure
        assert unsupported["error"] == (
            "Execution error:\n\nThe code execution request was rejected. Please check the "
            "tool input and try again."
        )


def test_the_real_client_with_librechat_jwt(
    librechat: str, app_server: AppServer, jwt_auth: KeyPair
) -> None:
    steps = [{"tool": "execute_code", "args": {"lang": "py", "code": CHART}}]
    [good] = run_tools(
        app_server,
        default_profile(librechat, steps),
        librechat=librechat,
        authorization=f"Bearer {jwt_auth.token()}",
    )
    assert good["downloads"][0]["status"] == 200
    [refused] = run_tools(app_server, default_profile(librechat, steps), librechat=librechat)
    if librechat == "v0.8.7":
        assert "returned 401" in refused["error"]
    else:
        assert "Code execution is not authorized." in refused["error"]


# -- v0.8.8's stateful profile -----------------------------------------------------------------


def prewarm(server: AppServer, authorization: str | None) -> requests.Response:
    """What LibreChat v0.8.8 sends when a turn starts for an agent with stateful code sessions
    (packages/api/src/agents/prewarm.ts)."""
    auth = {"Authorization": authorization} if authorization else {}
    return requests.post(
        f"{server.url}/api/code/stateful/v1/exec",
        json={"lang": "bash", "code": "true", "runtime_session_hint": HINT},
        headers={"User-Agent": "LibreChat/1.0", "X-CodeAPI-Expected-Profile": "stateful", **auth},
        timeout=60,
    )


def stateful_step(tool: str, args: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"tool": tool, "args": args, "profile": "stateful", "hint": HINT, **more}


# v0.8.7's client has no execution profiles: these run v0.8.8's only.
@pytest.mark.parametrize("with_jwt", [False, True], ids=["no-auth", "librechat-jwt"])
def test_the_stateful_profile_keeps_mnt_data_per_hint(
    agents_client: Path, app_server: AppServer, with_jwt: bool, request: pytest.FixtureRequest
) -> None:
    authorization = None
    if with_jwt:
        keys: KeyPair = request.getfixturevalue("jwt_auth")
        authorization = f"Bearer {keys.token()}"
    warmed = prewarm(app_server, authorization)
    assert (warmed.status_code, warmed.headers["X-CodeAPI-Execution-Profile"]) == (200, "stateful")
    wrote, read, elsewhere = run_tools(
        app_server,
        [
            stateful_step("bash_tool", {"command": "echo 'kept' > /mnt/data/note.txt; echo ok"}),
            stateful_step("execute_code", {"lang": "py", "code": CAT_NOTE}),
            stateful_step("execute_code", {"lang": "py", "code": CAT_NOTE}, hint=HINT + "-b"),
        ],
        librechat="v0.8.8",
        authorization=authorization,
    )
    assert wrote["content"].startswith("stdout:\nok"), wrote
    assert read["content"] == "stdout:\nkept", read
    assert wrote["artifact"]["session_id"] == read["artifact"]["session_id"]
    assert warmed.json()["session_id"] == read["artifact"]["session_id"]
    assert "No such file" in elsewhere["content"]  # another hint: another runtime session


def test_a_busy_hint_is_the_409_the_client_retries(
    agents_client: Path, app_server: AppServer, code_settings: Settings
) -> None:
    code_settings.CODE_INTERPRETER_RUNTIME_SESSION_WAIT_S = 0.5
    slow, busy = run_tools(
        app_server,
        [
            stateful_step("bash_tool", {"command": "sleep 4; echo slow"}),
            stateful_step("bash_tool", {"command": "echo fast"}, delay_ms=1500),
        ],
        librechat="v0.8.8",
        parallel=True,
    )
    assert slow["content"] == "stdout:\nslow", slow
    # 409 runtime_session_busy: a transient failure LibreChat's model is told to retry.
    assert busy["error"] == (
        "Execution error:\n\nCode execution is temporarily unavailable. Please retry."
    ), busy


def test_a_misrouted_profile_is_a_capability_mismatch(
    agents_client: Path, app_server: AppServer
) -> None:
    [refused] = run_tools(
        app_server,
        [stateful_step("execute_code", {"lang": "py", "code": "print(1)"})],
        librechat="v0.8.8",
        stateful_url=app_server.base_url,  # LIBRECHAT_CODE_BASEURL_STATEFUL set to /api/code/v1
    )
    assert "does not provide the requested execution profile" in refused["error"], refused
    assert "Do not retry this tool" in refused["error"]
