"""GET /api/endpoints, /api/models and /api/balance for the double's one custom endpoint.

The endpoints config is what LibreChat v0.8.7 derives from the capture's librechat.yaml:
the `agents` endpoint with its capabilities, and the custom endpoint (`Fake`) serving one
model (`fake-model`). Without provider keys the built-in endpoints are absent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .express import send_json
from .guards import authenticate, double_state

AGENT_CAPABILITIES = [
    "deferred_tools",
    "execute_code",
    "file_search",
    "actions",
    "tools",
    "context",
]
# Index of `agents` in librechat-data-provider's defaultEndpoints.
AGENTS_ORDER = 4
CUSTOM_ENDPOINT_ORDER = 9999


def catalog_routes() -> list[Route]:
    return [
        Route("/api/endpoints", endpoints, methods=["GET"]),
        Route("/api/models", models, methods=["GET"]),
        Route("/api/balance", balance, methods=["GET"]),
    ]


async def endpoints(request: Request) -> Response:
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    name = state.config.fake_endpoint
    return send_json(
        {
            "agents": {
                "userProvide": False,
                "capabilities": AGENT_CAPABILITIES,
                "order": AGENTS_ORDER,
                "disableBuilder": False,
            },
            name: {
                "order": CUSTOM_ENDPOINT_ORDER,
                "type": "custom",
                "userProvide": False,
                "userProvideURL": False,
                "modelDisplayLabel": name,
            },
        }
    )


async def models(request: Request) -> Response:
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    config = state.config
    return send_json(
        {
            "openAI": [],
            "anthropic": [],
            "azureOpenAI": [],
            "assistants": [],
            "azureAssistants": [],
            "google": [],
            "bedrock": [],
            config.fake_endpoint: [config.fake_model],
        }
    )


async def balance(request: Request) -> Response:
    """204 while balance is disabled (the default); a starting balance otherwise."""
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    if not state.config.balance_enabled:
        return Response(status_code=204)
    return send_json({"user": user.id, "tokenCredits": 20000, "autoRefillEnabled": False})
