"""LibreChat's real client: @librechat/agents (as v0.8.7 pins it) against our server on loopback.

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

from tests.code_interpreter.conftest import USER, AppServer, KeyPair
from tests.code_interpreter.test_librechat_replay import assert_png

NPM_DIR = Path(__file__).parent / "npm"
STAMP = NPM_DIR / "node_modules" / ".hestami-lock-sha256"
CHART = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.bar(['a', 'b'], [3, 5])\nplt.savefig('/mnt/data/chart.png')\nprint('saved')"
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


def run_tools(
    server: AppServer, steps: list[dict[str, Any]], authorization: str | None = None
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "LIBRECHAT_CODE_BASEURL": server.base_url,
        "LIBRECHAT_USER_ID": USER,
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


def test_execute_code_and_bash_tool_with_a_chart(
    agents_client: Path, app_server: AppServer
) -> None:
    printed, chart, bash = run_tools(
        app_server,
        [
            {"tool": "execute_code", "args": {"lang": "py", "code": "print(6 * 7)"}},
            {"tool": "execute_code", "args": {"lang": "py", "code": CHART}},
            {"tool": "bash_tool", "args": {"command": "python3 -c 'print(1 + 1)'; echo done"}},
        ],
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
    assert_png(base64.b64decode(download["base64"]))

    assert bash["tool"] == "bash_tool"
    assert bash["content"] == "stdout:\n2\ndone"


def test_errors_reach_the_model_readably(agents_client: Path, app_server: AppServer) -> None:
    [unsupported] = run_tools(
        app_server, [{"tool": "execute_code", "args": {"lang": "rs", "code": "fn main() {}"}}]
    )
    # LibreChat turns a non-2xx reply into the tool's error text, body included.
    assert "returned 400" in unsupported["error"]
    assert "Unsupported language: rs" in unsupported["error"]


def test_the_real_client_with_librechat_jwt(
    agents_client: Path, app_server: AppServer, jwt_auth: KeyPair
) -> None:
    [good] = run_tools(
        app_server,
        [{"tool": "execute_code", "args": {"lang": "py", "code": CHART}}],
        authorization=f"Bearer {jwt_auth.token()}",
    )
    assert good["downloads"][0]["status"] == 200
    [refused] = run_tools(
        app_server, [{"tool": "execute_code", "args": {"lang": "py", "code": "print(1)"}}]
    )
    assert "returned 401" in refused["error"]
