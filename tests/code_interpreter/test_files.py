"""Metadata, listing, deletion and download of stored files; links planted in /mnt/data."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client
from pytest_django import Settings

from code_interpreter.models import CodeFile
from tests.code_interpreter.conftest import BASE, OTHER_USER, USER, AppServer, post_exec


def make_file(api: Client, name: str = "out.txt", content: str = "hello", **body: Any) -> Any:
    code = f"import pathlib; pathlib.Path('/mnt/data/{name}').write_text({content!r})"
    response = post_exec(api, {"lang": "py", "code": code, **body})
    assert response.status_code == 200, response.content
    [entry] = response.json()["files"]
    return entry


def test_object_metadata_has_an_iso_last_modified(api: Client) -> None:
    entry = make_file(api)
    sid, fid = entry["storage_session_id"], entry["id"]
    response = api.get(f"{BASE}/sessions/{sid}/objects/{fid}?kind=user&id={USER}")
    assert response.status_code == 200
    body = response.json()
    assert body["lastModified"].endswith("Z")
    assert "T" in body["lastModified"]
    assert body["size"] == 5
    assert body["contentType"] == "text/plain"
    assert body["name"] == "out.txt"
    record = CodeFile.objects.get(pk=fid)
    assert body["lastModified"].startswith(record.created_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_listing_in_every_detail(api: Client) -> None:
    entry = make_file(api)
    sid, fid = entry["storage_session_id"], entry["id"]
    assert api.get(f"{BASE}/files/{sid}").json() == [f"{sid}/{fid}"]
    [summary] = api.get(f"{BASE}/files/{sid}?detail=summary").json()
    assert summary["name"] == f"{sid}/{fid}"
    assert summary["size"] == 5
    [full] = api.get(f"{BASE}/files/{sid}?detail=full").json()
    assert full["metadata"] == {"content-type": "text/plain", "original-filename": "out.txt"}
    [normalized] = api.get(f"{BASE}/files/{sid}?detail=normalized").json()
    assert normalized["id"] == fid
    assert normalized["name"] == "out.txt"
    assert api.get(f"{BASE}/files/{sid}?detail=everything").status_code == 400


@pytest.mark.parametrize("route", ["sessions/{sid}/objects/{fid}", "files/{sid}/{fid}"])
def test_delete_then_404(api: Client, route: str) -> None:
    entry = make_file(api)
    sid, fid = entry["storage_session_id"], entry["id"]
    url = f"{BASE}/{route.format(sid=sid, fid=fid)}?kind=user&id={USER}"
    assert api.delete(url).status_code == 200
    assert api.delete(url).status_code == 404  # LibreChat counts a final 404 as deleted
    assert api.get(f"{BASE}/download/{sid}/{fid}").status_code == 404
    ls = post_exec(api, {"lang": "bash", "code": "ls /mnt/data", "session_id": sid}).json()
    assert ls["stdout"] == ""


def test_download_like_librechat(api: Client) -> None:
    entry = make_file(api, "report.csv", "a,b\n1,2\n")
    url = f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}?kind=user&id={USER}"
    response = api.get(url, headers={"User-Agent": "LibreChat/1.0"})
    assert response.status_code == 200
    assert response.content == b"a,b\n1,2\n"
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Length"] == "8"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'attachment; filename="report.csv"'
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("header", "status", "content", "content_range"),
    [
        ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
        ("bytes=8-", 206, b"89", "bytes 8-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=0-1,4-5", 200, b"0123456789", None),
        ("lines=1-2", 200, b"0123456789", None),
    ],
)
def test_download_ranges(
    api: Client, header: str, status: int, content: bytes, content_range: str | None
) -> None:
    entry = make_file(api, "digits.txt", "0123456789")
    url = f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}"
    response = api.get(url, headers={"Range": header})
    assert response.status_code == status
    assert response.content == content
    assert response["Content-Length"] == str(len(content))
    assert response.get("Content-Range") == content_range


def test_unsatisfiable_range_is_416(api: Client) -> None:
    entry = make_file(api, "digits.txt", "0123456789")
    url = f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}"
    response = api.get(url, headers={"Range": "bytes=50-60"})
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */10"


def test_large_download_streams_whole(api: Client) -> None:
    code = "open('/mnt/data/big.bin','wb').write(bytes(range(256)) * 12000)"
    [entry] = post_exec(api, {"lang": "py", "code": code}).json()["files"]
    response = api.get(f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}")
    assert response.status_code == 200
    assert response.streaming
    data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert data == bytes(range(256)) * 12000
    assert response["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("résumé 2024.csv", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%202024.csv"),
        ('quo"te.txt', 'attachment; filename="quo\\"te.txt"'),
        ("图表.png", "attachment; filename*=utf-8''%E5%9B%BE%E8%A1%A8.png"),
    ],
)
def test_content_disposition_is_rfc_6266_and_injection_free(
    api: Client, name: str, disposition: str
) -> None:
    entry = make_file(api, name, "x")
    response = api.get(f"{BASE}/download/{entry['storage_session_id']}/{entry['id']}")
    assert response["Content-Disposition"] == disposition


def test_names_with_newlines_are_never_registered(api: Client) -> None:
    code = "open('/mnt/data/evil\\r\\nSet-Cookie: x=1.txt','w').write('x'); print('ok')"
    body = post_exec(api, {"lang": "py", "code": code}).json()
    assert body["stdout"] == "ok\n"
    assert body["files"] == []


@pytest.mark.parametrize(
    "url",
    [
        "download/short/AAAAAAAAAAAAAAAAAAAAA",
        "download/AAAAAAAAAAAAAAAAAAAAA/bad!id_______________",
        "sessions/AAAAAAAAAAAAAAAAAAAAA/objects/x",
        "files/AAAAAAAAAAAAAAAAAAAAA/x",
    ],
)
def test_malformed_ids_are_400(api: Client, url: str) -> None:
    method = api.delete if url.startswith("files/A") else api.get
    response = method(f"{BASE}/{url}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_id"


def test_traversal_in_the_url_matches_no_route(api: Client) -> None:
    for url in ("files/..%2F..%2Fetc", "download/..%2F..%2Fetc/passwd", "download/../../x/y"):
        response = api.get(f"{BASE}/{url}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_unknown_ids_are_404(api: Client) -> None:
    response = api.get(f"{BASE}/download/{'A' * 21}/{'B' * 21}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_another_users_files_are_not_found(api: Client) -> None:
    entry = make_file(api, user_id=USER)
    sid, fid = entry["storage_session_id"], entry["id"]
    for url in (
        f"download/{sid}/{fid}?kind=user&id={OTHER_USER}",
        f"sessions/{sid}/objects/{fid}?kind=user&id={OTHER_USER}",
        f"files/{sid}?kind=user&id={OTHER_USER}",
    ):
        response = api.get(f"{BASE}/{url}")
        assert response.status_code == 404, url
    assert (
        api.get(f"{BASE}/download/{sid}/{fid}", headers={"User-Id": OTHER_USER}).status_code == 404
    )
    assert api.get(f"{BASE}/download/{sid}/{fid}?kind=user&id={USER}").status_code == 200
    # An agent-kind request names a different owner altogether.
    assert api.get(f"{BASE}/download/{sid}/{fid}?kind=agent&id=agent_1").status_code == 404
    response = post_exec(
        api, {"lang": "py", "code": "print(1)", "session_id": sid, "user_id": OTHER_USER}
    )
    assert response.status_code == 404


# -- links planted in /mnt/data ----------------------------------------------------------------


def test_a_link_to_a_host_file_is_never_an_output(api: Client, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    code = f"ln -s {secret} /mnt/data/leak.txt; ln -s / /mnt/data/root; echo ok"
    body = post_exec(api, {"lang": "bash", "code": code}).json()
    assert body["stdout"] == "ok\n"
    assert body["files"] == []


def test_mounting_inputs_never_follows_planted_links(api: Client, tmp_path: Path) -> None:
    host_file = tmp_path / "host.csv"
    host_file.write_text("untouched")
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    [data] = post_exec(api, {"lang": "bash", "code": "echo new > /mnt/data/d.csv"}).json()["files"]
    planted = post_exec(
        api, {"lang": "bash", "code": f"ln -s {host_file} /mnt/data/x.csv; ln -s {host_dir} sub"}
    ).json()
    refs = [
        {"id": data["id"], "storage_session_id": data["storage_session_id"], "name": "x.csv"},
        {"id": data["id"], "storage_session_id": data["storage_session_id"], "name": "sub/y.csv"},
    ]
    body = post_exec(
        api,
        {
            "lang": "bash",
            "code": "cat x.csv sub/y.csv",
            "files": refs,
            "session_id": planted["session_id"],
        },
    ).json()
    assert body["stdout"] == "new\nnew\n"
    assert host_file.read_text() == "untouched"
    assert list(host_dir.iterdir()) == []


def test_downloads_come_from_storage_not_the_session_directory(
    api: Client, code_settings: Settings
) -> None:
    entry = make_file(api, "kept.txt", "stored bytes")
    sid = entry["storage_session_id"]
    workdir = Path(code_settings.CODE_INTERPRETER_SESSIONS_DIR) / sid
    (workdir / "kept.txt").unlink()
    (workdir / "kept.txt").symlink_to("/etc/passwd")
    response = api.get(f"{BASE}/download/{sid}/{entry['id']}")
    assert response.content == b"stored bytes"
    shutil.rmtree(workdir)  # as after a restart on another host
    assert api.get(f"{BASE}/download/{sid}/{entry['id']}").content == b"stored bytes"


def test_large_download_streams_under_asgi(app_server: AppServer) -> None:
    code = "open('/mnt/data/big.bin', 'wb').write(bytes(range(256)) * 16384)"  # 4 MiB
    with httpx.Client(base_url=app_server.base_url, timeout=60) as http:
        [entry] = http.post("/exec", json={"lang": "py", "code": code}).json()["files"]
        url = f"/download/{entry['storage_session_id']}/{entry['id']}"
        with http.stream("GET", url) as response:
            assert response.headers["content-length"] == str(4 * 1024 * 1024)
            chunks = list(response.iter_bytes())
        assert b"".join(chunks) == bytes(range(256)) * 16384
        tail = http.get(url, headers={"Range": "bytes=-256"})
        assert tail.status_code == 206
        assert tail.content == bytes(range(256))
