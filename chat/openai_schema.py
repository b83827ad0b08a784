"""`/api/v1` in the OpenAPI schema: a drf-spectacular post-processing hook (settings).

The views are plain async Django views (chat/openai_api.py), which drf-spectacular does not see;
the request and answer bodies are OpenAI's, as LibreChat's remote agents API sends them.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {
                    "type": "string",
                    "description": "invalid_request_error, authentication_error, "
                    "permission_error, rate_limit_error or server_error.",
                },
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
        }
    },
}
MODEL = {
    "type": "object",
    "description": "A LibreChat agent shared with the user for remote use.",
    "properties": {
        "id": {"type": "string", "description": "The agent id: what `model` takes."},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "provider": {"type": "string"},
    },
}
COMPLETION_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "description": "An agent id from GET /api/v1/models."},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
                    "content": {},
                },
            },
        },
        "stream": {"type": "boolean", "default": False},
        "conversation_id": {"type": "string"},
        "parent_message_id": {"type": "string"},
    },
}
COMPLETION = {
    "type": "object",
    "description": "`chat.completion`; with `stream: true`, server-sent events of "
    "`chat.completion.chunk` objects (`data: {...}`), the last with `usage`, then `data: [DONE]`.",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
    },
}
ERRORS = {
    "401": "No, invalid or revoked access token.",
    "403": "Account deactivated; LibreChat's role lacks REMOTE_AGENTS USE; agent not shared.",
    "409": "The user's chat account is not ready yet (provisioning).",
    "429": "Per-user rate limit (Retry-After), ours or LibreChat's.",
    "502": "LibreChat unreachable or failing.",
    "504": "LibreChat did not answer in time.",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(operation_id: str, summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses = {"200": ok} | {status: _json(ERROR, text) for status, text in ERRORS.items()}
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["openai"],
        "security": [{"jwtAuth": []}],
        "responses": responses,
        **extra,
    }


def add_openai_paths(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault("jwtAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    completion = _json(COMPLETION, "The answer (or, streamed, text/event-stream).")
    completion["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    result.setdefault("paths", {}).update(
        {
            "/api/v1/chat/completions": {
                "post": _operation(
                    "openai_chat_completions",
                    "Chat with a LibreChat agent (OpenAI chat completions)",
                    completion,
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": COMPLETION_REQUEST}},
                    },
                )
            },
            "/api/v1/models": {
                "get": _operation(
                    "openai_models_list",
                    "The agents shared with the user for remote use",
                    _json(
                        {
                            "type": "object",
                            "properties": {
                                "object": {"type": "string", "enum": ["list"]},
                                "data": {"type": "array", "items": MODEL},
                            },
                        },
                        "The list.",
                    ),
                )
            },
            "/api/v1/models/{model_id}": {
                "get": _operation(
                    "openai_models_retrieve",
                    "One agent (404 unknown, 403 not shared for remote use)",
                    _json(MODEL, "The agent."),
                    parameters=[
                        {
                            "name": "model_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
        }
    )
    return result
