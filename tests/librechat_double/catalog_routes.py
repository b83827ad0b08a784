"""GET /api/endpoints, /api/models and /api/balance for the double's one custom endpoint.

The endpoints config is what LibreChat v0.8.7 derives from the capture's librechat.yaml:
the `agents` endpoint with its capabilities, and the custom endpoint (`Fake`) serving one
model (`fake-model`). Without provider keys the built-in endpoints are absent; with a key of
`user_provided` (`DoubleConfig.user_provided_endpoints`) they are listed as
`{"userProvide": true, "order": <index>}` (`api/server/utils/handleText.js generateConfig`,
`api/server/services/Config/loadDefaultEConfig.js`: the order is the endpoint's index in
librechat-data-provider's `defaultEndpoints`), and /api/models gives their default models.
"""

from __future__ import annotations

from typing import Any

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
# Indexes in librechat-data-provider's defaultEndpoints (openAI, assistants, azureAssistants,
# azureOpenAI, agents, google, anthropic, custom, bedrock).
AGENTS_ORDER = 4
BUILT_IN_ORDER = {"openAI": 0, "azureOpenAI": 3, "google": 5, "anthropic": 6, "bedrock": 8}
CUSTOM_ENDPOINT_ORDER = 9999
# What /api/models lists for a built-in endpoint whose key is user-provided (LibreChat cannot
# ask the provider without a key, so it falls back to its default list).
DEFAULT_MODELS: dict[str, list[str]] = {
    "openAI": ["gpt-5.5", "gpt-5", "gpt-4o", "gpt-4o-mini"],
    "anthropic": ["claude-opus-4-5", "claude-sonnet-4-5"],
    "google": ["gemini-2.5-pro", "gemini-2.5-flash"],
    "azureOpenAI": ["gpt-4o"],
    "bedrock": ["anthropic.claude-sonnet-4-5"],
}


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
    config: dict[str, dict[str, Any]] = {
        endpoint: {"userProvide": True, "order": BUILT_IN_ORDER.get(endpoint, 0)}
        for endpoint in state.config.user_provided_endpoints
    }
    config["agents"] = {
        "userProvide": False,
        "capabilities": AGENT_CAPABILITIES,
        "order": AGENTS_ORDER,
        "disableBuilder": False,
    }
    config[name] = {
        "order": CUSTOM_ENDPOINT_ORDER,
        "type": "custom",
        "userProvide": False,
        "userProvideURL": False,
        "modelDisplayLabel": name,
    }
    # orderEndpointsConfig: by `order`.
    return send_json(dict(sorted(config.items(), key=lambda item: int(item[1]["order"]))))


async def models(request: Request) -> Response:
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    config = state.config
    listed: dict[str, list[str]] = {
        "openAI": [],
        "anthropic": [],
        "azureOpenAI": [],
        "assistants": [],
        "azureAssistants": [],
        "google": [],
        "bedrock": [],
    }
    for endpoint in config.user_provided_endpoints:
        listed[endpoint] = list(DEFAULT_MODELS.get(endpoint, []))
    listed[config.fake_endpoint] = [config.fake_model, *config.fake_more_models]
    return send_json(listed)


async def balance(request: Request) -> Response:
    """204 while balance is disabled (the default); a starting balance otherwise."""
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    if not state.config.balance_enabled:
        return Response(status_code=204)
    return send_json({"user": user.id, "tokenCredits": 20000, "autoRefillEnabled": False})
