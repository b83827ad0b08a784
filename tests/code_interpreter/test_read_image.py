"""LibreChat v0.8.8's ``read_file`` of an image: ``/exec`` of a small reader that prints one JSON
line ``{"total", "n", "b64"}`` per window of the file (``api/server/services/Files/Code/process.js
readSandboxImage``), in the stateful runtime session the image was made in. A window whose
base64 does not fit our stdout limit answers ``status: "OL"``, and LibreChat halves the window."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client
from pytest_django import Settings

from tests.code_interpreter.conftest import USER
from tests.code_interpreter.test_librechat_replay import assert_png
from tests.code_interpreter.test_profiles import STATEFUL, stateful

pytestmark = pytest.mark.usefixtures("sandbox_ready")

CHART = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.plot([1, 3, 2, 5]); plt.title('read me back')\nplt.savefig('/mnt/data/chart.png')"
)


def reader(path: str, offset: int, size: int) -> str:
    """A window reader in the form LibreChat sends it: bash running a Python heredoc, its
    parameters as base64 JSON so nothing is interpolated into the shell."""
    params = base64.b64encode(json.dumps({"p": path, "o": offset, "n": size}).encode()).decode()
    return "\n".join(
        [
            "python3 - <<'PY'",
            "import base64, json, os",
            f"a = json.loads(base64.b64decode({params!r}))",
            "with open(a['p'], 'rb') as f:",
            "    f.seek(a['o'])",
            "    raw = f.read(a['n'])",
            "print(json.dumps({'total': os.stat(a['p']).st_size, 'n': len(raw),"
            " 'b64': base64.b64encode(raw).decode()}))",
            "PY",
        ]
    )


def read_image(api: Client, path: str, window: int) -> tuple[bytes, list[Any]]:
    """Every window in turn, halving one that overflows; the bytes and each reply's status."""
    parts: list[bytes] = []
    statuses: list[Any] = []
    offset, total = 0, None
    while total is None or offset < total:
        reply = stateful(api, reader(path, offset, window))
        statuses.append(reply["status"])
        if reply["status"] == "OL":
            window //= 2
            assert window >= 256, reply
            continue
        chunk = json.loads(reply["stdout"].strip().splitlines()[-1])
        total = chunk["total"]
        parts.append(base64.b64decode(chunk["b64"]))
        offset += chunk["n"]
    return b"".join(parts), statuses


def test_an_image_is_read_back_in_base64_windows(api: Client) -> None:
    made = stateful(api, CHART, lang="py")
    [chart] = made["files"]
    data, statuses = read_image(api, "/mnt/data/chart.png", window=4 * 1024)
    assert set(statuses) == {"ok"}
    assert len(statuses) > 1  # several windows, one session
    assert_png(data)
    download = api.get(
        f"{STATEFUL}/download/{chart['storage_session_id']}/{chart['id']}",
        {"kind": "user", "id": USER},
    )
    assert download.content == data


def test_a_window_over_the_stdout_limit_is_ol_and_a_smaller_one_is_served(
    api: Client, code_settings: Settings
) -> None:
    stateful(api, CHART, lang="py")
    code_settings.CODE_INTERPRETER_MAX_OUTPUT_BYTES = 3000
    data, statuses = read_image(api, "/mnt/data/chart.png", window=8 * 1024)
    # 8 KiB and 4 KiB windows overflow (base64 is 4/3 larger); 2 KiB ones fit.
    assert statuses[:3] == ["OL", "OL", "ok"], statuses
    assert set(statuses[2:]) == {"ok"}
    assert_png(data)
