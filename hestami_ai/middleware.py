"""Django's standard middleware, without a thread hop per request under ASGI.

Under ASGI, Django runs every `MiddlewareMixin` hook through `sync_to_async` (a thread per request
and back), even when the hook does no I/O. That cost the chat proxy several milliseconds per
request (`bench/proxy.py`). These subclasses call the hooks that do no I/O directly; the session
is still saved in a thread when, and only when, it has to be written.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthentication
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessages
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessions
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware as DjangoXFrameOptions
from django.middleware.common import CommonMiddleware as DjangoCommon
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrf
from django.middleware.security import SecurityMiddleware as DjangoSecurity


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
