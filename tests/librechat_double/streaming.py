"""SSE on the wire: the generation stream, and the SSE-text denials written before a job starts.

The stream route answers like `GET /api/agents/chat/stream/:streamId`: the headers are
flushed at once, then one HTTP chunk per event, no heartbeats, the zero-length chunk after
`final` (or after an `event: error`). A client that goes away is noticed through the ASGI
`http.disconnect` message: it only unsubscribes, the generation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .ids import NO_PARENT, new_uuid
from .jobs import Job, Subscriber, sse_frame, unsubscribe
from .state import DoubleState, User

STREAM_HEADERS = [
    (b"content-encoding", b"identity"),
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_UNDEFINED = object()


class EventStreamResponse(Response):
    """The subscriber side of a generation job, as a streaming ASGI response."""

    def __init__(self, job: Job, subscriber: Subscriber, on_disconnect: Callable[[], None]) -> None:
        super().__init__(status_code=200)
        self.job = job
        self.subscriber = subscriber
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            while True:
                getter = asyncio.ensure_future(self.subscriber.queue.get())
                await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    self.on_disconnect()
                    return
                frame, terminal = getter.result()
                if frame:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                if terminal:
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            unsubscribe(self.job, self.subscriber)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def sse_text(
    *frames: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """`res.write()` without a Content-Type: status 200, chunked, one chunk per write."""

    async def body() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    response = StreamingResponse(body(), status_code=status)
    for name, value in headers or []:
        response.headers.append(name, value)
    return response


def handle_error(payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """`handleError(res, x)`: `event: error` with the JSON of x, then the end."""
    return sse_text(sse_frame(payload, event="error"), headers=headers)


def deny_request(
    state: DoubleState,
    user: User,
    body: dict[str, Any],
    error: dict[str, Any] | str,
    *,
    sender: str,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """denyRequest: a `created` event for the user message, then the error message as SSE.

    The two messages are saved when the request named an existing thread (a conversationId
    and a parent other than NO_PARENT).
    """
    text = json.dumps(error, separators=(",", ":")) if isinstance(error, dict) else error
    given_convo = body.get("conversationId")
    conversation_id = given_convo if given_convo is not None else new_uuid()
    message_id = body.get("messageId")
    user_message: dict[str, Any] = {
        "sender": "User",
        "messageId": message_id if message_id is not None else new_uuid(),
        "parentMessageId": body.get("parentMessageId", _UNDEFINED),
        "conversationId": conversation_id,
        "isCreatedByUser": True,
        "text": body.get("text", _UNDEFINED),
    }
    user_message = {k: v for k, v in user_message.items() if v is not _UNDEFINED}
    created = sse_frame({"message": user_message, "created": True})
    parent = body.get("parentMessageId")
    should_save = bool(given_convo) and bool(parent) and parent != NO_PARENT
    error_message = {
        "sender": sender,
        "messageId": new_uuid(),
        "conversationId": conversation_id,
        "parentMessageId": user_message["messageId"],
        "unfinished": False,
        "error": True,
        "final": True,
        "text": text,
        "isCreatedByUser": False,
    }
    if should_save:
        state.chat.save_message(user.id, dict(user_message))
        state.chat.save_message(user.id, {k: v for k, v in error_message.items() if k != "final"})
    return sse_text(created, sse_frame(error_message, event="error"), headers=headers)
