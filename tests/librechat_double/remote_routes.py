"""`/api/api-keys`, `/api/roles/:roleName` and the remote agents API, `/api/agents/v1/*`.

As LibreChat v0.8.7 has them:

* ``api/server/routes/apiKeys.js``: requireJwtAuth, then ``generateCheckAccess(REMOTE_AGENTS,
  [USE])`` (403 ``{"message": "Forbidden: Insufficient permissions"}``), then the handlers of
  ``packages/api/src/apiKeys/handlers.ts`` (400 ``{"error": "API key name is required"}``, 201
  with the key shown once, 404 ``{"error": "API key not found"}``, 204 on delete).
* ``api/server/routes/agents/openai.js``, mounted before the agents router's requireJwtAuth,
  checkBan and uaParser: the agent API key as bearer (``createRequireApiKeyAuth``: 401 in
  OpenAI's error shape), the same REMOTE_AGENTS USE check, and for completions
  ``createCheckRemoteAgentAccess`` (400 ``missing_model``, 404 ``model_not_found``, 403
  ``access_denied``) before the controller (``api/server/controllers/agents/openai.js``,
  ``packages/api/src/agents/openai/*``), which streams ``chat.completion.chunk`` events and ends
  with ``data: [DONE]``, or answers one ``chat.completion``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import fake_model
from .express import BodySyntaxError, read_body, send_json
from .guards import authenticate, double_state
from .ids import nanoid, tool_call_id
from .remote_store import Agent, RemoteAgentsStore
from .state import User
from .tokens import is_object_id
from .validation import MISSING

FORBIDDEN = {"message": "Forbidden: Insufficient permissions"}
ROLES = ("USER", "ADMIN")
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
CODE_TOOL = "execute_code"
SLOW_CHUNK_DELAY_S = 0.05


def remote_routes() -> list[Route]:
    return [
        Route("/api/api-keys", create_key, methods=["POST"]),
        Route("/api/api-keys", list_keys, methods=["GET"]),
        Route("/api/api-keys/{key_id}", get_key, methods=["GET"]),
        Route("/api/api-keys/{key_id}", delete_key, methods=["DELETE"]),
        Route("/api/roles/{role_name}", get_role, methods=["GET"]),
        Route("/api/agents/v1/chat/completions", completions, methods=["POST"]),
        Route("/api/agents/v1/models", list_models, methods=["GET"]),
        Route("/api/agents/v1/models/{model}", get_model, methods=["GET"]),
    ]


def openai_error(
    status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None
) -> Response:
    # createErrorResponse (service.ts) adds `param: null`; the auth middleware leaves it out.
    return send_json(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}, status
    )


def _auth_error(message: str, code: str) -> Response:
    error = {"message": message, "type": "invalid_request_error", "code": code}
    return send_json({"error": error}, status=401)


# -- /api/api-keys ------------------------------------------------------------------------------


def _key_user(request: Request) -> User | Response:
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    if not state.remote.allows(user.role, "USE"):
        return send_json(FORBIDDEN, status=403)
    return user


async def create_key(request: Request) -> Response:
    try:
        body = await read_body(request)
    except BodySyntaxError as error:
        return error.response()
    user = _key_user(request)
    if isinstance(user, Response):
        return user
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return send_json({"error": "API key name is required"}, status=400)
    key, plaintext = double_state(request).remote.create_key(user.id, name.strip())
    answer = key.listed()
    answer["key"] = plaintext
    return send_json(answer, status=201)


async def list_keys(request: Request) -> Response:
    user = _key_user(request)
    if isinstance(user, Response):
        return user
    return send_json({"keys": [k.listed() for k in double_state(request).remote.keys_of(user.id)]})


async def get_key(request: Request) -> Response:
    user = _key_user(request)
    if isinstance(user, Response):
        return user
    key_id = request.path_params["key_id"]
    if not is_object_id(key_id):  # mongoose's CastError, caught by the handler
        return send_json({"error": "Failed to get API key"}, status=500)
    found = double_state(request).remote.key_of(key_id, user.id)
    if found is None:
        return send_json({"error": "API key not found"}, status=404)
    return send_json(found.listed())


async def delete_key(request: Request) -> Response:
    user = _key_user(request)
    if isinstance(user, Response):
        return user
    key_id = request.path_params["key_id"]
    if not is_object_id(key_id):
        return send_json({"error": "Failed to delete API key"}, status=500)
    if not double_state(request).remote.delete_key(key_id, user.id):
        return send_json({"error": "API key not found"}, status=404)
    return Response(status_code=204)


async def get_role(request: Request) -> Response:
    """GET /api/roles/:roleName (api/server/routes/roles.js): any user may read a default role."""
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    name = request.path_params["role_name"].upper()
    if user.role != "ADMIN" and name not in ROLES:
        return send_json({"message": "Unauthorized"}, status=403)
    document = state.remote.role_document(name)
    if document is None:
        return send_json({"message": "Role not found"}, status=404)
    return send_json(document)


# -- /api/agents/v1 -----------------------------------------------------------------------------


def _key_auth(request: Request) -> User | Response:
    """requireApiKeyAuth, then checkRemoteAgentsFeature."""
    header = request.headers.get("authorization")
    if not header or not header.startswith("Bearer "):
        return _auth_error(
            "Missing or invalid Authorization header. Expected: Bearer <api_key>",
            "missing_api_key",
        )
    raw = header[7:]
    if not raw.strip():
        return _auth_error("API key is required", "missing_api_key")
    state = double_state(request)
    key = state.remote.validate_key(raw)
    if key is None:
        return _auth_error("Invalid API key", "invalid_api_key")
    user = state.user_by_id(key.user_id)
    if user is None:
        return _auth_error("User not found for this API key", "invalid_api_key")
    if not state.remote.allows(user.role, "USE"):
        return send_json(FORBIDDEN, status=403)
    return user


async def list_models(request: Request) -> Response:
    user = _key_auth(request)
    if isinstance(user, Response):
        return user
    agents = double_state(request).remote.remote_agents_of(user.id)
    return send_json({"object": "list", "data": [a.as_model() for a in agents]})


async def get_model(request: Request) -> Response:
    user = _key_auth(request)
    if isinstance(user, Response):
        return user
    remote = double_state(request).remote
    model = request.path_params["model"]
    agent = remote.agent(model)
    if agent is None:
        return openai_error(404, f"Model not found: {model}", code="model_not_found")
    if not remote.has_remote_access(user.id, agent):
        return openai_error(
            403,
            f"No remote access to model: {model}",
            type_="permission_error",
            code="access_denied",
        )
    return send_json(agent.as_model())


def _validation_error(body: Any) -> str | None:
    """validateRequest (service.ts)."""
    if not isinstance(body, dict):
        return "Request body is required"
    if not body.get("model") or not isinstance(body["model"], str):
        return "model (agent_id) is required"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages array is required"
    if not messages:
        return "messages array cannot be empty"
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not role or not isinstance(role, str):
            return f"messages[{index}].role is required"
        if role not in {"system", "user", "assistant", "tool"}:
            return f"messages[{index}].role must be one of: system, user, assistant, tool"
    return None


def _agent_for(body: Any, user: User, remote: RemoteAgentsStore) -> Agent | Response:
    """createCheckRemoteAgentAccess: the agent named by `model`, if the user may reach it."""
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.strip():
        return openai_error(400, "Model (agent ID) is required", code="missing_model")
    agent = remote.agent(model)
    if agent is None:
        return openai_error(404, f"Agent not found: {model}", code="model_not_found")
    if not remote.has_remote_access(user.id, agent):
        return openai_error(
            403,
            f"No remote access to agent: {model}",
            type_="permission_error",
            code="access_denied",
        )
    return agent


async def completions(request: Request) -> Response:
    try:
        body = await read_body(request)
    except BodySyntaxError as error:
        return error.response()
    user = _key_auth(request)
    if isinstance(user, Response):
        return user
    state = double_state(request)
    agent = _agent_for(None if body is MISSING else body, user, state.remote)
    if isinstance(agent, Response):
        return agent
    problem = _validation_error(body)
    if problem is not None:
        return openai_error(400, problem)
    turn = _Turn(body, agent)
    if "LLMERROR" in turn.text:
        return openai_error(500, fake_model.LLM_ERROR_TEXT, type_="server_error")
    if body.get("stream") is True:
        return StreamingResponse(
            turn.stream(state.remote),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    state.remote.count_completion(aborted=False)
    return send_json(turn.completion())


class _Turn:
    """One completion of the fake model, as the controller shapes it."""

    def __init__(self, body: dict[str, Any], agent: Agent) -> None:
        self.id = f"chatcmpl-{nanoid()}"
        self.created = int(time.time())
        self.model = agent.id
        self.text = _last_user_text(body["messages"])
        self.prompt_tokens = sum(fake_model.token_count(_text(m)) for m in body["messages"])
        self.tool_call = "RUNCODE" in self.text and CODE_TOOL in agent.tools
        if self.text.startswith(fake_model.ECHO_PREFIX):
            self.pieces = fake_model.echo_reply(self.text)
        elif "SLOW" in self.text:
            self.pieces = fake_model.slow_reply(20)
        elif self.tool_call:
            self.pieces = fake_model.CODE_REPLY
        else:
            self.pieces = fake_model.PLAIN_REPLY

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.pieces)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None
    ) -> bytes:
        """createChunk + writeSSE: one `data:` event per chunk."""
        document: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            document["usage"] = usage
        return f"data: {json.dumps(document, separators=(',', ':'))}\n\n".encode()

    async def stream(self, remote: RemoteAgentsStore) -> AsyncIterator[bytes]:
        finished = False
        try:
            yield self.chunk({"role": "assistant"})
            if self.tool_call:
                call = {"id": tool_call_id(), "type": "function"}
                name = {"name": fake_model.TOOL_NAME, "arguments": ""}
                yield self.chunk({"tool_calls": [{"index": 0, **call, "function": name}]})
                for args in fake_model.TOOL_ARG_CHUNKS:
                    yield self.chunk(
                        {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}
                    )
            slow = "SLOW" in self.text
            for piece in self.pieces:
                if slow:
                    await asyncio.sleep(SLOW_CHUNK_DELAY_S)
                yield self.chunk({"content": piece})
            yield self.chunk({}, "stop", self.usage)
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            remote.count_completion(aborted=not finished)

    def completion(self) -> dict[str, Any]:
        """buildNonStreamingResponse."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.pieces)}
        finish = "stop"
        if self.tool_call:
            arguments = "".join(fake_model.TOOL_ARG_CHUNKS)
            message["tool_calls"] = [
                {
                    "id": tool_call_id(),
                    "type": "function",
                    "function": {"name": fake_model.TOOL_NAME, "arguments": arguments},
                }
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self.usage,
        }


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message)
    return ""


# -- the double's own controls ------------------------------------------------------------------


def remote_control_routes() -> list[Route]:
    return [
        Route("/__double__/agents", add_agent, methods=["POST"]),
        Route("/__double__/roles", grant, methods=["POST"]),
    ]


async def add_agent(request: Request) -> Response:
    """{name, author_email, shared_with: [e-mail...], public, tools}: an agent, shared remotely."""
    state = double_state(request)
    body = await request.json()
    author = state.get_user(str(body.get("author_email", "")))
    if author is None:
        return JSONResponse({"error": "author_email names no user"}, status_code=400)
    shared = [state.get_user(str(e)) for e in body.get("shared_with", [])]
    agent = state.remote.add_agent(
        name=str(body.get("name") or "Agent"),
        author_id=author.id,
        description=str(body.get("description") or ""),
        tools=tuple(body.get("tools", ())),
        shared_with=tuple(u.id for u in shared if u is not None),
        public=bool(body.get("public", False)),
    )
    return JSONResponse({"id": agent.id}, status_code=201)


async def grant(request: Request) -> Response:
    """{role, permission, value}: what librechat.yaml's `interface.remoteAgents` sets."""
    body = await request.json()
    try:
        double_state(request).remote.grant(
            str(body.get("role", "USER")),
            str(body.get("permission", "USE")),
            value=bool(body.get("value", True)),
        )
    except ValueError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse(double_state(request).remote.role_document(str(body.get("role", "USER"))))
