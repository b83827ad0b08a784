"""Django's standard middleware, without a thread hop per request under ASGI.

Under ASGI, Django runs every `MiddlewareMixin` hook through `sync_to_async` (a thread per request
and back), even when the hook does no I/O. That cost the chat proxy several milliseconds per
request (`bench/proxy.py`). These subclasses call the hooks that do no I/O directly; the session
is still saved in a thread when, and only when, it has to be written.
"""

from __future__ import annotations

from typing import Any

import servestatic.middleware
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthentication
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessages
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessions
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as DjangoXFrameOptions
from django.middleware.common import CommonMiddleware as DjangoCommon
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrf
from django.middleware.security import SecurityMiddleware as DjangoSecurity

from core.logs import new_request_id, request_id_var, sane_request_id

REQUEST_ID_HEADER = "X-Request-ID"


class _NoIOHooks:
    """For middleware whose process_request / process_response only look at headers and memory."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response  # type: ignore[no-any-return]


class SecurityMiddleware(_NoIOHooks, DjangoSecurity):
    pass


class CommonMiddleware(_NoIOHooks, DjangoCommon):
    pass


class AuthenticationMiddleware(_NoIOHooks, DjangoAuthentication):
    pass


class MessageMiddleware(_NoIOHooks, DjangoMessages):
    pass


class XFrameOptionsMiddleware(_NoIOHooks, DjangoXFrameOptions):
    pass


class CsrfViewMiddleware(_NoIOHooks, DjangoCsrf):
    async def process_view(  # type: ignore[override]
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        # Reads cookies, headers and at most the (already received) form body: no network I/O.
        return super().process_view(request, callback, callback_args, callback_kwargs)


class SessionMiddleware(DjangoSessions):
    async def __acall__(self, request: HttpRequest) -> Any:
        self.process_request(request)
        response: Any = await self.get_response(request)  # type: ignore[misc]
        session = request.session
        if session.accessed and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            # Writing the session is database or cache I/O: that one goes to a thread.
            return await sync_to_async(self.process_response, thread_sensitive=True)(
                request, response
            )
        return self.process_response(request, response)


class ServeStaticMiddleware(servestatic.middleware.ServeStaticMiddleware):  # type: ignore[misc]
    """ServeStatic, asked only about paths under STATIC_URL.

    With DEBUG on it autorefreshes: every request, static or not, is looked up on disk in a
    worker thread (a thread hop, the finders) before it reaches a view. In production the
    lookup is a dict get. The chat proxy's requests are never static files, so in development
    they skip the lookup and cost what they cost in production (bench/proxy.py --debug).
    """

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh and not request.path_info.startswith(self.static_prefix):
            response: HttpResponseBase = await self.get_response(request)
            return response
        served: HttpResponseBase = await super().__call__(request)
        return served


class SyncAndAsyncMiddleware:
    """Middleware that runs natively in both modes: ``handle`` under WSGI, ``__acall__`` under
    ASGI, so Django never wraps it in a thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self.handle(request)

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError


class RequestIdMiddleware(SyncAndAsyncMiddleware):
    """Every request gets an id: the incoming ``X-Request-ID`` when it is sane, else a new one.

    It is put in a contextvar (every log record carries it, ``core/logs.py``), in
    ``request.META`` (so views read the sanitised value), sent to LibreChat on every call, and
    returned in the response's ``X-Request-ID``. Cheap on purpose (the chat proxy goes through
    it): a header read, a regex match or a uuid4, no thread hop.
    """

    def handle(self, request: HttpRequest) -> HttpResponseBase:
        request_id = _bind_request_id(request)
        token = request_id_var.set(request_id)
        try:
            response: HttpResponseBase = self.get_response(request)
        finally:
            # A thread serves many requests one after another: leave nothing behind.
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = _bind_request_id(request)
        token = request_id_var.set(request_id)
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            # Under ASGI each request runs in a task of its own (Django's ASGIHandler) whose
            # context ends with it, and the streamed body and uvicorn's access log line come
            # after this returns: keep the id. Under WSGI (or the test client) the async chain
            # runs through AsyncToSync, which copies the context back into the calling thread.
            if not isinstance(request, ASGIRequest):
                request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _bind_request_id(request: HttpRequest) -> str:
    request_id = sane_request_id(request.META.get("HTTP_X_REQUEST_ID")) or new_request_id()
    request.META["HTTP_X_REQUEST_ID"] = request_id
    request.__dict__.pop("headers", None)  # a cached HttpHeaders would hold the raw value
    return request_id
