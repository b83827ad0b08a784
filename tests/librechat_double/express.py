"""Responses and request bodies the way Express 5 and body-parser 2 produce and read them."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from .validation import MISSING

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

HeaderList = list[tuple[str, str]]


def send_json(payload: Any, status: int = 200, headers: HeaderList | None = None) -> Response:
    """`res.json()`: compact JSON, raw UTF-8, `application/json; charset=utf-8`."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return with_headers(Response(body, status_code=status, media_type=JSON_TYPE), headers)


def send_text(text: str, status: int = 200, headers: HeaderList | None = None) -> Response:
    """`res.send(string)`: Express labels any string body text/html."""
    return with_headers(Response(text, status_code=status, media_type=HTML_TYPE), headers)


def redirect(location: str) -> Response:
    """`res.status(401).redirect(url)`: redirect() resets the status to 302."""
    response = Response(f"Found. Redirecting to {location}", status_code=302, media_type=TEXT_TYPE)
    response.headers["Location"] = location
    return response


def not_found_html(method: str, path: str) -> Response:
    """finalhandler's 404 for paths outside /api that no route serves."""
    body = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
        f"</head>\n<body>\n<pre>Cannot {method} {path}</pre>\n</body>\n</html>\n"
    )
    return Response(body, status_code=404, media_type=HTML_TYPE)


def with_headers(response: Response, headers: HeaderList | None) -> Response:
    for name, value in headers or []:
        response.headers.append(name, value)
    return response


class BodySyntaxError(Exception):
    """body-parser rejected the JSON; LibreChat's ErrorController echoes the raw body with 400."""

    def __init__(self, raw: str) -> None:
        super().__init__("invalid JSON body")
        self.raw = raw

    def response(self) -> Response:
        return send_text(self.raw, status=400)


async def read_body(request: Request) -> Any:
    """`req.body`: parsed JSON or urlencoded form, else MISSING (body-parser 2 leaves undefined)."""
    raw = await request.body()
    if not raw:
        return MISSING
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media_type == "application/json":
        return _parse_strict_json(text)
    if media_type == "application/x-www-form-urlencoded":
        form: dict[str, Any] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            previous = form.get(key)
            if previous is None:
                form[key] = value
            elif isinstance(previous, list):
                previous.append(value)
            else:
                form[key] = [previous, value]
        return form
    return MISSING


def _parse_strict_json(text: str) -> Any:
    # body-parser's strict mode: only an object or an array at the top level.
    if text.lstrip(" \t\n\r")[:1] not in {"{", "["}:
        raise BodySyntaxError(text)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise BodySyntaxError(text) from error


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class ExpressRoute(Route):
    """A route matched as Express 5 matches it (router 2 with path-to-regexp 8): on the raw path,
    still percent-encoded (`%61uth` is not `auth`), case-insensitively (`sensitive: false`), with
    one optional trailing slash (`strict: false`); parameters are then decoded once, as
    `decodeURIComponent` does."""

    def __init__(self, route: Route) -> None:
        super().__init__(
            route.path,
            route.endpoint,
            methods=list(route.methods) if route.methods else None,
            name=route.name,
            include_in_schema=False,
        )
        self.path_regex = re.compile(self.path_regex.pattern, re.IGNORECASE)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return super().matches(scope)
        match, child = super().matches({**scope, "path": express_path(scope), "root_path": ""})
        if match is not Match.NONE:
            child["path_params"] = {
                name: unquote(value) if isinstance(value, str) else value
                for name, value in child["path_params"].items()
            }
        return match, child


def express_path(scope: Scope) -> str:
    """The path Express routes: the request target as sent, less one trailing slash."""
    raw = scope.get("raw_path") or scope["path"].encode()
    path = bytes(raw).decode("latin-1")
    return path[:-1] if len(path) > 1 and path.endswith("/") else path
