"""/api/agents/chat/*: start a turn, subscribe to its stream, abort it, list and inspect jobs.

(`api/server/routes/agents/index.js`, `chat.js`, `api/server/controllers/agents/request.js`.)
Every route runs requireJwtAuth → checkBan → uaParser first. Only the chat POST then runs the
message limiters (per IP, per user), validateConvoAccess and buildEndpointOption before the
controller's own checks: the unsaved-parent 409 and the concurrent-generation 429.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .express import send_json, send_text
from .generation import Generation, Turn, response_sender
from .guards import double_state, guarded_body, guarded_user, request_ip
from .ids import NEW_CONVO, new_uuid
from .jobs import Job, abort, release, subscribe
from .rate_limit import StackedLimit, hit_stacked
from .state import DoubleState, User
from .streaming import EventStreamResponse, deny_request, handle_error

PARENT_STILL_SAVING = (
    "Cannot submit a follow-up while the selected parent response is still being saved. "
    "Please wait and try again."
)
STREAM_NOT_FOUND = {
    "error": "Stream not found",
    "message": "The generation job does not exist or has expired.",
}
_UNDEFINED: Any = object()
ABORT_SAVE_LATENCY_S = 0.005


def chat_routes() -> list[Route]:
    return [
        Route("/api/agents/chat/stream/{stream_id}", stream, methods=["GET"]),
        Route("/api/agents/chat/active", active, methods=["GET"]),
        Route("/api/agents/chat/status/{conversation_id}", status, methods=["GET"]),
        Route("/api/agents/chat/abort", abort_generation, methods=["POST"]),
        Route("/api/agents/chat", start, methods=["POST"]),
        Route("/api/agents/chat/{endpoint}", start, methods=["POST"]),
    ]


async def start(request: Request) -> Response:
    """POST /api/agents/chat/:endpoint: answer `started` at once, generate in the background."""
    state = double_state(request)
    config, store = state.config, state.chat
    if not state.ready:
        return send_json({"code": "SERVER_NOT_READY"}, status=503, headers=[("Retry-After", "1")])
    admitted = await guarded_body(request, state)
    if isinstance(admitted, Response):
        return admitted
    body, user = admitted
    ip = request_ip(request, state)
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    headers, denied = message_limits(state, user, ip, fields)
    if denied is not None:
        return denied
    state.count("chat_requests")
    if not isinstance(body, dict):
        # req.body is undefined without a JSON body: a TypeError for Express's error handler.
        return send_text("An unknown error occurred.", status=500, headers=headers)
    sender = response_sender(body, config)
    raw_convo = body.get("conversationId")
    convo_id = str(raw_convo) if raw_convo else None
    if convo_id and convo_id != NEW_CONVO:
        owner = store.convo_owner(convo_id)
        if owner is not None and owner != user.id:
            refusal = {"type": "convo_access", "error": "User not authorized for this conversation"}
            return deny_request(state, user, body, refusal, sender=sender, headers=headers)
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return handle_error({"text": "Error parsing conversation"}, headers=headers)
    parent = body.get("parentMessageId")
    if isinstance(parent, str) and parent.endswith("_"):
        scope = convo_id if convo_id and convo_id != NEW_CONVO else None
        if store.find_message(user.id, parent, scope) is None:
            return send_json({"error": PARENT_STILL_SAVING}, status=409, headers=headers)
    allowed, pending, limit = store.try_start_request(user.id)
    if not allowed:
        score = config.concurrent_violation_score
        state.record_violation(user_id=user.id, ip=ip, violation_type="concurrent", score=score)
        state.count("concurrent_limit_denials")
        violation = {
            "type": "concurrent",
            "limit": limit,
            "pendingRequests": pending,
            "score": score,
        }
        return send_json(violation, status=429, headers=headers)
    is_new = not convo_id or convo_id == NEW_CONVO
    conversation_id = new_uuid() if is_new or convo_id is None else convo_id
    loop = asyncio.get_running_loop()
    job = Job(
        stream_id=conversation_id,
        user_id=user.id,
        conversation_id=conversation_id,
        created_at=store.now(),
        loop=loop,
        store=store,
        data=store.data,
    )
    previous = store.register_job(job)
    if previous is not None and not previous.finished:
        # A new turn for a conversation still generating replaces the old job.
        previous.cancel_from_any_thread()
        release(previous)
    turn = Turn(user.id, body, endpoint, conversation_id, is_new)
    job.task = loop.create_task(Generation(store, config, job, turn).run())
    state.count("generations_started")
    started = {"streamId": conversation_id, "conversationId": conversation_id, "status": "started"}
    return send_json(started, headers=headers)


def message_limits(
    state: DoubleState, user: User, ip: str | None, body: dict[str, Any]
) -> tuple[list[tuple[str, str]], Response | None]:
    """messageIpLimiter, then messageUserLimiter; the later one's headers win."""
    config, store = state.config, state.chat
    limiters: list[StackedLimit] = []
    if config.limit_message_ip:
        limiters.append(
            (
                store.message_ip_limiter,
                ip or "",
                config.message_ip_max,
                config.message_ip_window_s,
                "ip",
            )
        )
    if config.limit_message_user:
        limiters.append(
            (
                store.message_user_limiter,
                user.id,
                config.message_user_max,
                config.message_user_window_s,
                "user",
            )
        )
    headers, exceeded = hit_stacked(limiters, state.now)
    if exceeded is None:
        return headers, None
    kind, limit, window_s = exceeded
    state.record_violation(
        user_id=user.id,
        ip=ip,
        violation_type="message_limit",
        score=config.message_violation_score,
    )
    state.count("message_limit_denials")
    minutes = window_s / 60
    error = {
        "type": "message_limit",
        "max": limit,
        "limiter": kind,
        "windowInMinutes": int(minutes) if minutes.is_integer() else minutes,
    }
    sender = response_sender(body, config)
    return headers, deny_request(state, user, body, error, sender=sender, headers=headers)


async def stream(request: Request) -> Response:
    """GET /api/agents/chat/stream/:streamId[?resume=true]."""
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    job = state.chat.get_job(request.path_params["stream_id"])
    if job is None:
        return send_json(STREAM_NOT_FOUND, status=404)
    if job.user_id != user.id:
        return send_json({"error": "Unauthorized"}, status=403)
    resume = request.query_params.getlist("resume") == ["true"]
    subscriber = subscribe(job, resume=resume)
    state.count("stream_subscriptions")
    return EventStreamResponse(job, subscriber, lambda: state.count("stream_disconnects"))


async def active(request: Request) -> Response:
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    return send_json({"activeJobIds": state.chat.active_job_ids(user.id)})


async def status(request: Request) -> Response:
    """GET /api/agents/chat/status/:conversationId: `{"active":false}` once the job is gone."""
    state = double_state(request)
    user = guarded_user(request, state)
    if isinstance(user, Response):
        return user
    conversation_id = request.path_params["conversation_id"]
    job = state.chat.get_job(conversation_id)
    if job is None:
        return send_json({"active": False})
    if job.user_id != user.id:
        return send_json({"error": "Unauthorized"}, status=403)
    resume_state = job.resume_state()
    return send_json(
        {
            "active": job.status == "running",
            "streamId": conversation_id,
            "status": job.status,
            "aggregatedContent": resume_state.get("aggregatedContent", []),
            "createdAt": job.created_at_ms,
            "resumeState": resume_state,
        }
    )


async def abort_generation(request: Request) -> Response:
    """POST /api/agents/chat/abort {streamId|conversationId|abortKey}."""
    state = double_state(request)
    admitted = await guarded_body(request, state)
    if isinstance(admitted, Response):
        return admitted
    body, user = admitted
    if not isinstance(body, dict):
        return send_text("An unknown error occurred.", status=500)
    store = state.chat
    target = _abort_target(body)
    job = store.get_job(str(target)) if target is not _UNDEFINED and target else None
    if job is None:
        running = store.active_job_ids(user.id)
        if running:
            target = running[0]
            job = store.get_job(target)
    if job is None or not target:
        missing: dict[str, Any] = {"error": "Job not found"}
        if target is not _UNDEFINED:
            missing["streamId"] = target
        return send_json(missing, status=404)
    if job.user_id != user.id:
        return send_json({"error": "Unauthorized"}, status=403)
    result = abort(job)
    # LibreChat saves the partial (a Mongo round trip) before answering: the stream gets the
    # aborted `final` first.
    await asyncio.sleep(ABORT_SAVE_LATENCY_S)
    user_message = job.user_message or {}
    if result["content"] and user_message.get("messageId") and job.response_message_id:
        # Saved before answering, so an immediate follow-up finds its parent.
        store.save_message(
            user.id,
            {
                "messageId": job.response_message_id,
                "attachments": [],
                "parentMessageId": user_message["messageId"],
                "conversationId": job.conversation_id,
                "content": result["content"],
                "text": result["text"],
                "sender": job.sender or "AI",
                "endpoint": job.endpoint,
                "model": job.model,
                "tokenCount": 3,
                "unfinished": True,
                "error": False,
                "isCreatedByUser": False,
            },
        )
    return send_json({"success": True, "aborted": target})


def _abort_target(body: dict[str, Any]) -> Any:
    """The job id as LibreChat picks it from the body.

    `streamId || (conversationId !== 'new' ? conversationId : null) || abortKey?.split(':')[0]`
    """
    stream_id = body.get("streamId", _UNDEFINED)
    if stream_id is not _UNDEFINED and stream_id:
        return stream_id
    conversation_id = body.get("conversationId", _UNDEFINED)
    if conversation_id != NEW_CONVO and conversation_id is not _UNDEFINED and conversation_id:
        return conversation_id
    abort_key = body.get("abortKey", _UNDEFINED)
    if abort_key is _UNDEFINED or abort_key is None:
        return _UNDEFINED
    return str(abort_key).split(":")[0]
