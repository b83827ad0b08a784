"""LibreChat 0.8.8's POST /api/agents/chat/steer and POST /api/agents/chat/resume.

* steer (`api/server/routes/agents/index.js`, mounted before the chat router: requireJwtAuth →
  checkBan → uaParser → the message limiters → PII filter → moderation → SteerController;
  `packages/api` steering `handleSteerRequest`): 400 `INVALID_CONVERSATION` / `EMPTY_TEXT`,
  413 `STEER_TOO_LONG`, 404 `NO_ACTIVE_RUN`, 403 `UNAUTHORIZED`, 409 `RUN_PAUSED`, 429
  `STEER_QUEUE_FULL`, else 202 `{status: "queued", steerId, position, conversationId}`.
* resume (`api/server/routes/agents/chat.js` `POST /resume`, the chat router's chain;
  `api/server/controllers/agents/resume.js`): 400 without a conversationId, 404 without a
  job, 403 for another user's, 409 while the run is not paused for review.

Both carry the negotiated `generationProtocolVersion` in the body and the
`X-LibreChat-Generation-Protocol` header. On 0.8.7 neither route exists: Express hands the
request to `POST /chat/:endpoint`, which starts a turn on an endpoint called "steer".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import releases
from .chat_routes import message_limits, start
from .express import send_json
from .guards import double_state, guarded_body, request_ip
from .ids import NEW_CONVO


def steer_routes() -> list[Route]:
    """Mounted before `POST /api/agents/chat/{endpoint}`, which takes them on 0.8.7."""
    return [
        Route("/api/agents/chat/steer", steer, methods=["POST"]),
        Route("/api/agents/chat/resume", resume, methods=["POST"]),
    ]


def _reply(
    request: Request, body: Any, status: int, payload: dict[str, Any], headers: list[Any]
) -> Response:
    protocol = releases.requested_protocol(request.headers, request.query_params, body)
    sent = [*headers, (releases.PROTOCOL_HEADER, str(protocol))]
    return send_json({**payload, releases.PROTOCOL_FIELD: protocol}, status=status, headers=sent)


@dataclass
class _Call:
    state: Any
    body: Any
    fields: dict[str, Any]
    user: Any
    headers: list[Any]


async def _admit(request: Request, counter: str) -> _Call | Response:
    """The chain both routes share: on 0.8.7 the chat start that takes them; else the body,
    its user, the message limiters, then the call is counted."""
    state = double_state(request)
    if not releases.has_steer_and_resume(state.config.version):
        return await start(request)
    admitted = await guarded_body(request, state)
    if isinstance(admitted, Response):
        return admitted
    body, user = admitted
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    headers, denied = message_limits(state, user, request_ip(request, state), fields)
    if denied is not None:
        return denied
    state.count(counter)
    return _Call(state, body, fields, user, headers)


async def steer(request: Request) -> Response:
    call = await _admit(request, "steer_calls")
    if isinstance(call, Response):
        return call
    state, body, fields, user, headers = call.state, call.body, call.fields, call.user, call.headers
    conversation_id = fields.get("conversationId")
    if not isinstance(conversation_id, str) or conversation_id in ("", NEW_CONVO):
        return _reply(request, body, 400, {"code": "INVALID_CONVERSATION"}, headers)
    text = fields.get("text")
    if not isinstance(text, str) or not text.replace("\0", "").strip():
        return _reply(request, body, 400, {"code": "EMPTY_TEXT"}, headers)
    text = text.replace("\0", "").strip()
    limit = state.config.steer_max_length
    if len(text) > limit:
        return _reply(request, body, 413, {"code": "STEER_TOO_LONG", "maxLength": limit}, headers)
    job = state.chat.get_job(conversation_id)
    if job is None or job.status in ("complete", "error", "aborted"):
        return _reply(request, body, 404, {"code": "NO_ACTIVE_RUN"}, headers)
    if job.user_id != user.id:
        return _reply(request, body, 403, {"code": "UNAUTHORIZED"}, headers)
    if job.status == "requires_action":
        return _reply(request, body, 409, {"code": "RUN_PAUSED"}, headers)
    if len(job.steers) >= state.config.steer_queue_max:
        return _reply(request, body, 429, {"code": "STEER_QUEUE_FULL"}, headers)
    steer_id = str(uuid.uuid4())
    job.steers.append({"steerId": steer_id, "text": text, "userId": user.id})
    queued = {
        "status": "queued",
        "steerId": steer_id,
        "position": len(job.steers),
        "conversationId": conversation_id,
    }
    return _reply(request, body, 202, queued, headers)


async def resume(request: Request) -> Response:
    call = await _admit(request, "resume_calls")
    if isinstance(call, Response):
        return call
    state, body, fields, user, headers = call.state, call.body, call.fields, call.user, call.headers
    conversation_id = fields.get("conversationId")
    if not conversation_id or conversation_id == NEW_CONVO:
        missing = {"error": "conversationId is required to resume"}
        return _reply(request, body, 400, missing, headers)
    job = state.chat.get_job(str(conversation_id))
    if job is None:
        gone = {"error": "No paused generation for this conversation"}
        return _reply(request, body, 404, gone, headers)
    if job.user_id != user.id:
        return _reply(request, body, 403, {"error": "Unauthorized"}, headers)
    # The fake model never pauses for a tool approval or a question.
    return _reply(request, body, 409, {"error": "No live pending action to resume"}, headers)
