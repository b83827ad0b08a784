"""/api/convos and /api/messages (`api/server/routes/convos.js`, `messages.js`).

Both groups run requireJwtAuth only (no ban check, no uaParser). Conversations page with
`limit` and a base64 JSON cursor; messages page with `pageSize` and a `String(date)` cursor.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .express import BodySyntaxError, read_body, send_json, send_text
from .fake_model import token_count
from .generation import response_sender
from .guards import authenticate, double_state
from .ids import NEW_CONVO
from .state import DoubleState, User
from .streaming import deny_request

TITLE_NOT_FOUND = "Title not found or method not implemented for the conversation's endpoint"
MAX_CONVO_TITLE_LENGTH = 1024
_PROJECT_ID = re.compile(r"^[a-f\d]{24}$", re.IGNORECASE)
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")


def convo_routes() -> list[Route]:
    return [
        Route("/api/convos", list_convos, methods=["GET"]),
        Route("/api/convos", delete_convos, methods=["DELETE"]),
        Route("/api/convos/all", delete_all_convos, methods=["DELETE"]),
        Route("/api/convos/update", update_convo, methods=["POST"]),
        Route("/api/convos/archive", archive_convo, methods=["POST"]),
        Route("/api/convos/gen_title/{conversation_id}", generated_title, methods=["GET"]),
        Route("/api/convos/{conversation_id}", get_convo, methods=["GET"]),
        Route("/api/messages", list_messages, methods=["GET"]),
        Route("/api/messages/{conversation_id}", conversation_messages, methods=["GET"]),
        Route("/api/messages/{conversation_id}/{message_id}", get_message, methods=["GET"]),
        Route("/api/messages/{conversation_id}/{message_id}", edit_message, methods=["PUT"]),
    ]


def js_parse_int(value: str | None) -> int | None:
    """`parseInt(x, 10)`: the leading integer, or None for NaN."""
    match = _LEADING_INT.match(value or "")
    return int(match.group(1)) if match else None


def is_enabled(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


async def _user(request: Request) -> tuple[DoubleState, User | Response]:
    state = double_state(request)
    return state, authenticate(request, state)


async def _json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = await read_body(request)
    except BodySyntaxError as error:
        return error.response()
    return body if isinstance(body, dict) else {}


async def _user_and_body(request: Request) -> tuple[DoubleState, User, dict[str, Any]] | Response:
    """requireJwtAuth, then the body (an object, else `{}`)."""
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    body = await _json_body(request)
    if isinstance(body, Response):
        return body
    return state, user, body


# -- conversations -----------------------------------------------------------------------------


async def list_convos(request: Request) -> Response:
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    query = request.query_params
    limit = js_parse_int(query.get("limit")) or 25
    project_id = query.get("projectId")
    if project_id and project_id != "unassigned" and not _PROJECT_ID.match(project_id):
        return send_json(
            {"error": "projectId must be a valid project id or unassigned"}, status=400
        )
    try:
        result = state.chat.list_convos(
            user.id,
            cursor=query.get("cursor"),
            limit=max(limit, 1),
            is_archived=is_enabled(query.get("isArchived")),
            tags=query.getlist("tags") or None,
            search=query.get("search") or None,
            sort_by=query.get("sortBy") or "updatedAt",
            sort_direction=query.get("sortDirection") or "desc",
        )
    except ValueError:
        return send_json({"error": "Error fetching conversations"}, status=500)
    return send_json(result)


async def get_convo(request: Request) -> Response:
    """The full document, or 404 with an empty body (`res.status(404).end()`)."""
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    convo = state.chat.get_convo(user.id, request.path_params["conversation_id"])
    if convo is None:
        return Response(status_code=404)
    return send_json(convo)


async def generated_title(request: Request) -> Response:
    """Polls the title cache (500 ms, 1, 2, 4, 8 s), answers `{title}` once, else 404."""
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    conversation_id = request.path_params["conversation_id"]
    title = state.chat.cached_title(user.id, conversation_id)
    if title is None:
        for delay in state.config.gen_title_poll_delays_s:
            await asyncio.sleep(delay)
            title = state.chat.cached_title(user.id, conversation_id)
            if title is not None:
                break
    if title is None:
        return send_json({"message": TITLE_NOT_FOUND}, status=404)
    state.chat.forget_title(user.id, conversation_id)
    return send_json({"title": title})


async def delete_convos(request: Request) -> Response:
    admitted = await _user_and_body(request)
    if isinstance(admitted, Response):
        return admitted
    state, user, body = admitted
    arg = _arg(body)
    conversation_id = arg.get("conversationId")
    if not any(arg.get(key) for key in ("conversationId", "source", "thread_id", "endpoint")):
        return send_json({"error": "no parameters provided"}, status=400)
    if not conversation_id and arg.get("source") == "button":
        return send_text("No conversationId provided")
    try:
        # Without a conversationId the filter is empty: every conversation of the user goes.
        result = state.chat.delete_convos(
            user.id, str(conversation_id) if conversation_id else None
        )
    except LookupError:
        return send_text("Error clearing conversations", status=500)
    return send_json(result, status=201)


async def delete_all_convos(request: Request) -> Response:
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    try:
        result = state.chat.delete_convos(user.id, None)
    except LookupError:
        return send_text("Error clearing conversations", status=500)
    return send_json(result, status=201)


async def update_convo(request: Request) -> Response:
    """Rename: 201 with the document; an unknown id is upserted into a new conversation."""
    admitted = await _convo_update(request)
    if isinstance(admitted, Response):
        return admitted
    state, user, arg, conversation_id = admitted
    title = arg.get("title", ...)
    if title is ...:
        return send_json({"error": "title is required"}, status=400)
    if not isinstance(title, str):
        return send_json({"error": "title must be a string"}, status=400)
    changes = {"title": title.strip()[:MAX_CONVO_TITLE_LENGTH]}
    convo = state.chat.save_convo(user.id, conversation_id, changes, defaults={"endpoint": None})
    return send_json(convo, status=201)


async def archive_convo(request: Request) -> Response:
    admitted = await _convo_update(request)
    if isinstance(admitted, Response):
        return admitted
    state, user, arg, conversation_id = admitted
    archived = arg.get("isArchived")
    if not isinstance(archived, bool):
        return send_json({"error": "isArchived must be a boolean"}, status=400)
    convo = state.chat.save_convo(
        user.id, conversation_id, {"isArchived": archived}, defaults={"endpoint": None}
    )
    return send_json(convo)


async def _convo_update(
    request: Request,
) -> tuple[DoubleState, User, dict[str, Any], str] | Response:
    """/update and /archive: requireJwtAuth, validateConvoAccess, a conversationId in `arg`.

    Answers the state, the user, `req.body.arg` and its conversationId, or the first refusal.
    """
    admitted = await _user_and_body(request)
    if isinstance(admitted, Response):
        return admitted
    state, user, body = admitted
    denied = _convo_access(state, user, body)
    if denied is not None:
        return denied
    arg = _arg(body)
    conversation_id = arg.get("conversationId")
    if not conversation_id:
        return send_json({"error": "conversationId is required"}, status=400)
    return state, user, arg, str(conversation_id)


def _convo_access(state: DoubleState, user: User, body: dict[str, Any]) -> Response | None:
    """validateConvoAccess: someone else's conversation gets denyRequest's SSE text (200)."""
    arg = _arg(body)
    conversation_id = body.get("conversationId") or arg.get("conversationId")
    if not conversation_id or conversation_id == NEW_CONVO:
        return None
    owner = state.chat.convo_owner(str(conversation_id))
    if owner is None or owner == user.id:
        return None
    error = {"type": "convo_access", "error": "User not authorized for this conversation"}
    return deny_request(state, user, body, error, sender=response_sender(body, state.config))


def _arg(body: dict[str, Any], key: str = "arg") -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


# -- messages ----------------------------------------------------------------------------------


async def list_messages(request: Request) -> Response:
    """GET /api/messages?conversationId=&cursor=&pageSize=: `{messages, nextCursor}`."""
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    query = request.query_params
    conversation_id, message_id = query.get("conversationId"), query.get("messageId")
    sort_by = query.get("sortBy") or "updatedAt"
    sort_field = sort_by if sort_by in {"endpoint", "createdAt", "updatedAt"} else "createdAt"
    page_size = js_parse_int(query.get("pageSize")) or 25
    if conversation_id and message_id:
        found = state.chat.find_message(user.id, message_id, conversation_id)
        messages = [] if found is None else _full_messages(state, user, conversation_id, message_id)
        return send_json({"messages": messages, "nextCursor": None})
    if conversation_id:
        page = state.chat.messages_page(
            user.id,
            conversation_id,
            sort_field=sort_field,
            descending=query.get("sortDirection") != "asc",
            limit=max(page_size, 1),
            cursor=query.get("cursor"),
        )
        return send_json(page)
    return send_json({"messages": [], "nextCursor": None})


def _full_messages(
    state: DoubleState, user: User, conversation_id: str, message_id: str
) -> list[dict[str, Any]]:
    every = state.chat.get_messages(user.id, conversation_id, public=False)
    return [m for m in every if m["messageId"] == message_id][:1]


async def conversation_messages(request: Request) -> Response:
    """GET /api/messages/:conversationId: a plain array in creation order."""
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    conversation_id = request.path_params["conversation_id"]
    refused = _validate_message_request(state, user, request, {}, conversation_id)
    if refused is not None:
        return refused
    return send_json(state.chat.get_messages(user.id, conversation_id))


async def get_message(request: Request) -> Response:
    state, user = await _user(request)
    if isinstance(user, Response):
        return user
    conversation_id = request.path_params["conversation_id"]
    refused = _validate_message_request(state, user, request, {}, conversation_id)
    if refused is not None:
        return refused
    found = state.chat.find_message(user.id, request.path_params["message_id"], conversation_id)
    return send_json([] if found is None else [found])


async def edit_message(request: Request) -> Response:
    """PUT /api/messages/:conversationId/:messageId {text[, index][, model]}."""
    admitted = await _user_and_body(request)
    if isinstance(admitted, Response):
        return admitted
    state, user, body = admitted
    conversation_id = request.path_params["conversation_id"]
    message_id = request.path_params["message_id"]
    refused = _validate_message_request(state, user, request, body, conversation_id)
    if refused is not None:
        return refused
    text, index = body.get("text"), body.get("index", ...)
    try:
        if index is ...:
            changes = {"text": text, "tokenCount": token_count(str(text or "")) - 4}
            return send_json(state.chat.update_message(user.id, message_id, changes))
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            return send_json({"error": "Invalid index"}, status=400)
        message = state.chat.find_message(user.id, message_id, conversation_id)
        if message is None:
            return send_json({"error": "Message not found"}, status=404)
        content = message.get("content")
        if not isinstance(content, list) or index >= len(content):
            return send_json({"error": "Invalid index"}, status=400)
        part = content[index]
        if not part:
            return send_json({"error": "Content part not found"}, status=400)
        kind = part.get("type")
        if kind not in {"text", "think"}:
            return send_json({"error": "Cannot update non-text content"}, status=400)
        updated = [*content[:index], {"type": kind, kind: text}, *content[index + 1 :]]
        changes = {"content": updated}
        token_total = message.get("tokenCount")
        if token_total is not None:
            old = token_count(str(part.get(kind) or "")) - 4
            changes["tokenCount"] = max(0, token_total - old) + token_count(str(text or "")) - 4
        return send_json(state.chat.update_message(user.id, message_id, changes))
    except LookupError:
        return send_json({"error": "Internal server error"}, status=500)


def _validate_message_request(
    state: DoubleState,
    user: User,
    request: Request,
    body: dict[str, Any],
    conversation_id: str,
) -> Response | None:
    """validateMessageReq: matching ids, `new` answers [], the user's conversation only."""
    nested = _arg(body, "message")
    body_id, nested_id = body.get("conversationId"), nested.get("conversationId")
    if (body_id and body_id != conversation_id) or (nested_id and nested_id != conversation_id):
        return send_json({"error": "Conversation ID mismatch"}, status=400)
    if conversation_id == NEW_CONVO:
        return send_json([])
    if state.chat.get_convo(user.id, conversation_id) is not None:
        return None
    job = state.chat.get_job(conversation_id)
    readable_job = (
        request.method == "GET"
        and "message_id" not in request.path_params
        and job is not None
        and job.status == "running"
        and job.user_id == user.id
    )
    if readable_job:
        return None
    return send_json({"error": "Conversation not found"}, status=404)
