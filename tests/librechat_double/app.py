"""The LibreChat double as an ASGI app (serve it with `LibreChatDouble`, or any ASGI server)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route

from . import api_routes, auth_routes
from .catalog_routes import catalog_routes
from .chat_routes import chat_routes
from .config import DoubleConfig
from .control_routes import ServerControl, control_routes
from .convo_routes import convo_routes
from .express import ExpressRoute
from .files_routes import files_routes
from .middleware import DoubleMiddleware
from .remote_routes import remote_control_routes, remote_routes
from .state import DoubleState
from .steer_routes import steer_routes

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(
    config: DoubleConfig,
    *,
    state: DoubleState | None = None,
    server: ServerControl | None = None,
) -> Starlette:
    """Build the app; `state` lets a caller keep a handle on it, `server` enables 'down'."""
    if state is not None and state.config is not config:
        raise ValueError("state was built with another DoubleConfig")
    state = state or DoubleState(config)
    routes = [
        Route("/api/auth/register", auth_routes.register, methods=["POST"]),
        Route("/api/auth/login", auth_routes.login, methods=["POST"]),
        Route("/api/auth/refresh", auth_routes.refresh, methods=["POST"]),
        Route("/api/auth/logout", auth_routes.logout, methods=["POST"]),
        Route("/api/user", api_routes.current_user, methods=["GET"]),
        Route("/api/user/delete", api_routes.delete_account, methods=["DELETE"]),
        Route("/api/config", api_routes.startup_config, methods=["GET"]),
        Route("/health", api_routes.health, methods=["GET"]),
        Route("/livez", api_routes.health, methods=["GET"]),
        Route("/readyz", api_routes.readiness, methods=["GET"]),
        *catalog_routes(),
        *steer_routes(),
        *chat_routes(),
        *convo_routes(),
        *files_routes(),
        *remote_routes(),
        # Express falls through to these when no route above matches (wrong method included).
        Route("/api", api_routes.api_fallback, methods=_ALL_METHODS),
        Route("/api/{rest:path}", api_routes.api_fallback, methods=_ALL_METHODS),
        Route("/{rest:path}", api_routes.outside_api, methods=_ALL_METHODS),
    ]
    # LibreChat's routes match as Express matches them; the double's own controls exactly.
    routes = [
        *control_routes(server),
        *remote_control_routes(),
        *(ExpressRoute(route) for route in routes),
    ]
    middleware = [
        # LibreChat's `compression()` (api/server/index.js, unless DISABLE_COMPRESSION): gzip for
        # answers of 1 KiB and more when the client accepts it, never for event streams. (Express
        # sends them chunked, Starlette with a Content-Length: a proxy must handle both.)
        Middleware(GZipMiddleware, minimum_size=1024),
        Middleware(DoubleMiddleware, state=state),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.double = state
    return app
