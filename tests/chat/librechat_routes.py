"""LibreChat v0.8.7's API routes (and the chat routes 0.8.8 adds), as the tests see them: the
mounts of `api/server/index.js` and the routers in `api/server/routes/` (file named per group),
`:name` for a parameter.

Kept by hand from LibreChat's source (and the contract, shared/librechat-contract.md B1-B4, A4,
A6 and pitfall 20); the proxy's allowlist (chat/policy.py) must be a subset of it, and every
route outside the allowlist is tried in many spellings by tests/chat/test_proxy_routes.py.
"""

from __future__ import annotations

ROUTES: tuple[tuple[str, str], ...] = (
    # auth.js
    ("POST", "auth/logout"),
    ("POST", "auth/login"),
    ("POST", "auth/refresh"),
    ("POST", "auth/register"),
    ("POST", "auth/requestPasswordReset"),
    ("POST", "auth/resetPassword"),
    ("GET", "auth/2fa/enable"),
    ("POST", "auth/2fa/verify"),
    ("POST", "auth/2fa/verify-temp"),
    ("POST", "auth/2fa/confirm"),
    ("POST", "auth/2fa/disable"),
    ("POST", "auth/2fa/backup/regenerate"),
    ("GET", "auth/graph-token"),
    # user.js
    ("GET", "user"),
    ("GET", "user/terms"),
    ("POST", "user/terms/accept"),
    ("POST", "user/plugins"),
    ("DELETE", "user/delete"),
    ("POST", "user/verify"),
    ("POST", "user/verify/resend"),
    # admin/users.js; api-keys (packages/api apiKeys); keys.js; roles.js
    ("GET", "admin/users"),
    ("GET", "admin/users/search"),
    ("GET", "api-keys"),
    ("POST", "api-keys"),
    ("DELETE", "api-keys/:id"),
    ("GET", "keys"),
    ("PUT", "keys"),
    ("DELETE", "keys"),
    ("DELETE", "keys/:name"),
    ("GET", "roles/:roleName"),
    ("PUT", "roles/:roleName/prompts"),
    ("PUT", "roles/:roleName/agents"),
    ("PUT", "roles/:roleName/memories"),
    ("PUT", "roles/:roleName/people-picker"),
    ("PUT", "roles/:roleName/marketplace"),
    # config.js, endpoints.js, models.js, balance.js, banner.js, search.js
    ("GET", "config"),
    ("GET", "endpoints"),
    ("GET", "endpoints/token-config"),
    ("GET", "models"),
    ("GET", "balance"),
    ("GET", "banner"),
    ("GET", "search/enable"),
    # convos.js
    ("GET", "convos"),
    ("GET", "convos/:conversationId"),
    ("GET", "convos/gen_title/:conversationId"),
    ("DELETE", "convos"),
    ("DELETE", "convos/all"),
    ("POST", "convos/update"),
    ("POST", "convos/archive"),
    ("POST", "convos/import"),
    ("POST", "convos/fork"),
    ("POST", "convos/duplicate"),
    # messages.js
    ("GET", "messages"),
    ("POST", "messages/branch"),
    ("POST", "messages/artifact/:messageId"),
    ("GET", "messages/:conversationId"),
    ("POST", "messages/:conversationId"),
    ("GET", "messages/:conversationId/:messageId"),
    ("PUT", "messages/:conversationId/:messageId"),
    ("PUT", "messages/:conversationId/:messageId/feedback"),
    ("DELETE", "messages/:conversationId/:messageId"),
    # agents/index.js, agents/openai.js, agents/responses.js, agents/v1.js, agents/chat.js
    ("POST", "agents/v1/responses"),
    ("POST", "agents/v1/chat/completions"),
    ("GET", "agents/v1/models"),
    ("GET", "agents/v1/models/:id"),
    ("GET", "agents"),
    ("POST", "agents"),
    ("GET", "agents/categories"),
    ("GET", "agents/:id"),
    ("GET", "agents/:id/expanded"),
    ("PATCH", "agents/:id"),
    ("DELETE", "agents/:id"),
    ("POST", "agents/:id/duplicate"),
    ("POST", "agents/:id/revert"),
    ("GET", "agents/tools"),
    ("POST", "agents/tools/:toolId/call"),
    ("GET", "agents/actions"),
    ("POST", "agents/actions/:agent_id"),
    ("DELETE", "agents/actions/:agent_id/:action_id"),
    ("POST", "agents/chat"),
    ("POST", "agents/chat/:endpoint"),
    ("GET", "agents/chat/stream/:streamId"),
    ("GET", "agents/chat/active"),
    ("GET", "agents/chat/status/:conversationId"),
    ("POST", "agents/chat/abort"),
    # 0.8.8 (agents/index.js, agents/chat.js): steering and resuming a paused run.
    ("POST", "agents/chat/steer"),
    ("POST", "agents/chat/resume"),
    # files/index.js, files/files.js, files/images.js, files/avatar.js, files/stt.js, files/tts.js
    ("GET", "files"),
    ("POST", "files"),
    ("DELETE", "files"),
    ("GET", "files/config"),
    ("GET", "files/agent/:agent_id"),
    ("GET", "files/code/download/:sessionId/:fileId"),
    ("GET", "files/download/:userId/:fileId"),
    ("POST", "files/images"),
    ("POST", "files/images/avatar"),
    ("POST", "files/stt"),
    ("POST", "files/tts"),
    # presets.js
    ("GET", "presets"),
    ("POST", "presets"),
    ("POST", "presets/delete"),
    # share.js
    ("GET", "share"),
    ("GET", "share/:shareId"),
    ("GET", "share/link/:conversationId"),
    ("POST", "share/:conversationId"),
    ("PATCH", "share/:shareId"),
    ("DELETE", "share/:shareId"),
    # tags.js
    ("GET", "tags"),
    ("POST", "tags"),
    ("PUT", "tags/:tag"),
    ("DELETE", "tags/:tag"),
    ("PUT", "tags/convo/:conversationId"),
    # memories.js
    ("GET", "memories"),
    ("POST", "memories"),
    ("PATCH", "memories/preferences"),
    ("PATCH", "memories/:key"),
    ("DELETE", "memories/:key"),
    # prompts.js, categories.js
    ("GET", "prompts"),
    ("POST", "prompts"),
    ("GET", "prompts/all"),
    ("GET", "prompts/groups"),
    ("GET", "prompts/groups/:groupId"),
    ("PATCH", "prompts/groups/:groupId"),
    ("DELETE", "prompts/groups/:groupId"),
    ("GET", "prompts/:promptId"),
    ("DELETE", "prompts/:promptId"),
    ("GET", "categories"),
    # mcp.js, accessPermissions.js, assistants/, actions.js
    ("GET", "mcp/tools"),
    ("GET", "mcp/connection/status"),
    ("GET", "mcp/:serverName/oauth/initiate"),
    ("POST", "mcp/:serverName/reinitialize"),
    ("GET", "permissions/search-principals"),
    ("GET", "permissions/:resourceType/:resourceId"),
    ("PUT", "permissions/:resourceType/:resourceId"),
    ("GET", "assistants/v2"),
    ("POST", "assistants/v2/chat"),
    ("GET", "actions/:action_id/oauth/callback"),
)

# A value for each parameter when a route is tried: the case of an id must survive.
SAMPLE_VALUES = {"endpoint": "Fake", "roleName": "ADMIN", "tag": "work"}
SAMPLE_ID = "AbC12-x_Yz"


def with_samples(path: str) -> str:
    return "/".join(
        SAMPLE_VALUES.get(part[1:], SAMPLE_ID) if part.startswith(":") else part
        for part in path.split("/")
    )
