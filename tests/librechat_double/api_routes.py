"""Everything outside /api/auth: user, config, health probes and the UA-guarded route groups."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .express import not_found_html, send_json, send_text
from .guards import authenticate, double_state, guarded_user
from .state import ROLE_ADMIN

# Route groups that run requireJwtAuth → checkBan → uaParser before anything else.
UA_GUARDED_PREFIXES = ("/api/agents", "/api/files", "/api/assistants", "/api/permissions")
PUBLIC_USER_FIELDS = (
    "_id",
    "id",
    "name",
    "username",
    "email",
    "emailVerified",
    "avatar",
    "provider",
    "role",
    "plugins",
    "twoFactorEnabled",
    "termsAccepted",
    "personalization",
    "favorites",
    "skillStates",
    "createdAt",
    "updatedAt",
)
DEFAULT_SOCIAL_LOGINS = ["google", "facebook", "openid", "github", "discord", "saml"]
DELETION_REFUSED = "You do not have permission to delete this account"
# What an image built from a release tag reports (resolveBuildInfo reads git at start-up).
BUILD_COMMIT = "0f8c2d4e6a8b0c1d2e3f405162738495a6b7c8d9"
BUILD_DATE = "2026-11-20T00:00:00.000Z"


async def health(request: Request) -> Response:
    """/health and /livez answer as soon as the process listens."""
    return send_text("OK")


async def readiness(request: Request) -> Response:
    """/readyz: 503 NOT_READY until post-listen initialisation (MCP, migrations) is over."""
    if not double_state(request).ready:
        return send_text("NOT_READY", status=503)
    return send_text("OK")


async def current_user(request: Request) -> Response:
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    document = {**user.lean_document(), "id": user.id}
    return send_json({name: document[name] for name in PUBLIC_USER_FIELDS})


async def delete_account(request: Request) -> Response:
    """DELETE /api/user/delete: requireJwtAuth → canDeleteAccount → deleteUserController
    (api/server/routes/user.js). canDeleteAccount (api/server/middleware/canDeleteAccount.js)
    lets an ADMIN through always and anyone else when ALLOW_ACCOUNT_DELETION is enabled (the
    default); the controller deletes the user's messages, sessions, conversations, files and
    the user itself, then answers 200 {"message": "User deleted"} (UserController.js). Two-factor
    accounts (a code in the body) are not modelled: the double has none."""
    state = double_state(request)
    user = authenticate(request, state)
    if isinstance(user, Response):
        return user
    if user.role != ROLE_ADMIN and not state.config.allow_account_deletion:
        return send_json({"message": DELETION_REFUSED}, status=403)
    state.delete_user(user.email)
    state.count("accounts_deleted")
    return send_json({"message": "User deleted"})


async def startup_config(request: Request) -> Response:
    """GET /api/config: the pre-login part (all the login and registration pages read), plus,
    for a request with a valid access token, the post-login `allowAccountDeletion` (true for an
    ADMIN whatever ALLOW_ACCOUNT_DELETION says; api/server/routes/config.js
    buildPostLoginPayload, read in LibreChat-AI/LibreChat at v0.8.8)."""
    state = double_state(request)
    config = state.config
    payload: dict[str, object] = {
        "appTitle": config.app_title,
        "discordLoginEnabled": False,
        "facebookLoginEnabled": False,
        "githubLoginEnabled": False,
        "googleLoginEnabled": False,
        "appleLoginEnabled": False,
        "openidLoginEnabled": False,
        "openidLabel": "Continue with OpenID",
        "openidAutoRedirect": False,
        "samlLoginEnabled": False,
        "serverDomain": config.server_domain,
        "emailLoginEnabled": config.allow_email_login,
        "registrationEnabled": config.allow_registration,
        "socialLoginEnabled": False,
        "emailEnabled": config.email_verification_required,
        "passwordResetEnabled": False,
        "ldap": {"enabled": False},
        "socialLogins": DEFAULT_SOCIAL_LOGINS,
    }
    if config.build_branch:
        # buildBuildInfoPayload: commit, commitShort, branch, buildDate (no version field).
        branch = f"v{config.version}" if config.build_branch == "auto" else config.build_branch
        payload["buildInfo"] = {
            "commit": BUILD_COMMIT,
            "commitShort": BUILD_COMMIT[:7],
            "branch": branch,
            "buildDate": BUILD_DATE,
        }
    if config.min_password_length != 8:
        # Only present when MIN_PASSWORD_LENGTH is set.
        payload["minPasswordLength"] = config.min_password_length
    if request.headers.get("authorization"):
        user = authenticate(request, state)
        if not isinstance(user, Response):
            payload["allowAccountDeletion"] = (
                config.allow_account_deletion or user.role == ROLE_ADMIN
            )
    return send_json(payload)


async def api_fallback(request: Request) -> Response:
    """Every other /api path: guarded groups run their middleware, then `Endpoint not found`."""
    state = double_state(request)
    path = request.url.path.lower()  # Express's mounts match case-insensitively too
    if _is_chat_start(request) and not state.ready:
        return send_json({"code": "SERVER_NOT_READY"}, status=503, headers=[("Retry-After", "1")])
    if any(path == prefix or path.startswith(prefix + "/") for prefix in UA_GUARDED_PREFIXES):
        user = guarded_user(request, state)
        if isinstance(user, Response):
            return user
    return send_json({"message": "Endpoint not found"}, status=404)


async def outside_api(request: Request) -> Response:
    """Outside /api LibreChat serves its single-page app on GET, and Express 404s the rest."""
    if request.method in {"GET", "HEAD"}:
        return send_text(
            '<!DOCTYPE html><html lang="en"><head><title>LibreChat</title></head></html>'
        )
    return not_found_html(request.method, request.url.path)


def _is_chat_start(request: Request) -> bool:
    path = request.url.path.lower()
    return (
        request.method == "POST"
        and path.startswith("/api/agents/chat/")
        and not path.startswith("/api/agents/chat/abort")
    )
