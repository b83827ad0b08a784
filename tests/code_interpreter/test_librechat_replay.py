"""LibreChat v0.8.7's own requests (transcripts §f and §g) replayed against uvicorn on loopback."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta

import httpx

from tests.code_interpreter.conftest import USER, AppServer

# Headers as captured: node-fetch for /exec, axios for everything else.
EXEC_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "LibreChat/1.0",
    "Accept": "*/*",
    "Accept-Encoding": "gzip,deflate",
    "Connection": "keep-alive",
}
AXIOS_HEADERS = {
    "Accept": "application/json, text/plain, */*",
    "User-Agent": "LibreChat/1.0",
    "Accept-Encoding": "gzip, compress, deflate, br",
}
PLOT = (
    "python3 -c \"import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
    "plt.plot([1, 2, 3], [6, 7, 42]); plt.savefig('/mnt/data/plot.png'); print(6*7)\""
)
SUM_Y = (
    "python3 -c \"import csv; print(sum(int(r['y']) for r in "
    "csv.DictReader(open('/mnt/data/data.csv'))))\""
)


def assert_png(data: bytes) -> tuple[int, int]:
    """A real PNG: signature, an IHDR with its CRC, and an IEND at the end."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    ihdr = data[16 : 16 + 13]
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(b"IHDR" + ihdr)
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    width, height = struct.unpack(">II", ihdr[:8])
    return width, height


def test_transcript_f_bash_tool_plot_then_download(app_server: AppServer) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=60) as http:
        response = http.post("/exec", json={"lang": "bash", "code": PLOT}, headers=EXEC_HEADERS)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["stdout"] == "42\n"
        [plot] = result["files"]
        assert plot["name"] == "plot.png"
        assert plot["path"] == "/mnt/data/plot.png"
        assert plot["storage_session_id"] == result["session_id"]
        assert "inherited" not in plot

        sid, fid = plot["storage_session_id"], plot["id"]
        listing = http.get(f"/files/{sid}?detail=normalized", headers=AXIOS_HEADERS).json()
        assert [(f["id"], f["name"], f["contentType"]) for f in listing] == [
            (fid, "plot.png", "image/png")
        ]
        # processCodeOutput: GET {BASE}/download/{sid}/{id}?kind=user&id=<userId>, arraybuffer.
        download = http.get(
            f"/download/{sid}/{fid}",
            params={"kind": "user", "id": USER},
            headers={**AXIOS_HEADERS, "Connection": "close"},
            timeout=15,
        )
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        assert download.headers["content-length"] == str(len(download.content))
        assert download.headers["content-disposition"] == 'attachment; filename="plot.png"'
        assert assert_png(download.content) == (640, 480)


def test_transcript_g_upload_freshness_exec_and_second_turn(app_server: AppServer) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=60) as http:
        # uploadCodeEnvFile: fields kind, id, then the file; the user in User-Id.
        upload = http.post(
            "/upload",
            data={"kind": "user", "id": USER},
            files={"file": ("data.csv", b"x,y\n1,2\n3,4\n", "text/csv")},
            headers={**AXIOS_HEADERS, "User-Id": USER},
        )
        assert upload.status_code == 200, upload.text
        uploaded = upload.json()
        assert uploaded["message"] == "success"
        [csv_file] = uploaded["files"]
        csv_ref = {
            "id": csv_file["fileId"],
            "resource_id": USER,
            "name": "data.csv",
            "storage_session_id": uploaded["storage_session_id"],
            "kind": "user",
        }

        # getSessionInfo: only lastModified is read; under 23 h means "still there".
        freshness = http.get(
            f"/sessions/{uploaded['storage_session_id']}/objects/{csv_file['fileId']}",
            params={"kind": "user", "id": USER},
            headers={**AXIOS_HEADERS, "Connection": "close"},
            timeout=5,
        )
        assert freshness.status_code == 200
        modified = datetime.fromisoformat(freshness.json()["lastModified"].replace("Z", "+00:00"))
        assert datetime.now(UTC) - modified < timedelta(hours=23)

        run = http.post(
            "/exec", json={"lang": "bash", "code": SUM_Y, "files": [csv_ref]}, headers=EXEC_HEADERS
        )
        assert run.status_code == 200, run.text
        assert run.json()["stdout"] == "6\n"
        assert [f.get("inherited") for f in run.json()["files"]] == [True]

        # A plot in one turn, then a turn that gets both files back as inputs.
        plotted = http.post("/exec", json={"lang": "bash", "code": PLOT}, headers=EXEC_HEADERS)
        [plot] = plotted.json()["files"]
        plot_ref = {
            "id": plot["id"],
            "resource_id": USER,
            "name": "plot.png",
            "storage_session_id": plot["storage_session_id"],
            "kind": "user",
        }
        again = http.post(
            "/exec",
            json={"lang": "bash", "code": f"{SUM_Y}; ls /mnt/data", "files": [plot_ref, csv_ref]},
            headers=EXEC_HEADERS,
        ).json()
        assert again["stdout"] == "6\ndata.csv\nplot.png\n"
        assert sorted((f["name"], f["inherited"]) for f in again["files"]) == [
            ("data.csv", True),
            ("plot.png", True),
        ]
