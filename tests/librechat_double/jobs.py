"""Resumable generation jobs the way LibreChat's in-memory GenerationJobManager runs them.

(`packages/api/src/stream/GenerationJobManager.ts`, `api/server/routes/agents/index.js`.)

- Events emitted while nobody is subscribed go to an early-event buffer. The first subscriber
  gets the buffer replayed; after every subscriber has left, new events buffer again, so a
  plain re-subscribe receives only the gap and the live events (no `created`, no old text).
- `?resume=true` drains the buffer into a `sync` snapshot (`resumeState`, `pendingEvents`).
- A job that completes is deleted at once (late subscribers get 404); an aborted job too; a
  failed job stays, with status "error", for `stream_error_job_ttl_s`, replaying its error.
- When the last subscriber leaves a running job, a partial response is saved.

Everything here runs on the server's event loop; the registry lives in the ChatStore.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chat_store import ChatStore, _ChatData


def sse_frame(payload: Any, event: str = "message") -> bytes:
    """One event, one HTTP chunk: `event: <name>\\ndata: <compact JSON>\\n\\n`."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[tuple[bytes, bool]] = field(default_factory=asyncio.Queue)


@dataclass(eq=False)
class Job:
    stream_id: str
    user_id: str
    conversation_id: str
    created_at: float
    loop: asyncio.AbstractEventLoop
    store: ChatStore
    data: _ChatData
    status: str = "running"
    completed_at: float | None = None
    task: asyncio.Task[None] | None = None
    aborted: bool = False
    created_event_emitted: bool = False
    has_subscriber: bool = False
    subscribers: list[Subscriber] = field(default_factory=list)
    early_buffer: list[bytes] = field(default_factory=list)
    final_event: dict[str, Any] | None = None
    error: str | None = None
    request_released: bool = False
    # Resume metadata.
    user_message: dict[str, Any] | None = None
    response_message_id: str | None = None
    sender: str | None = None
    endpoint: str | None = None
    model: str | None = None
    title_event: dict[str, Any] | None = None
    context_usage: dict[str, Any] | None = None
    # The graph's contentParts (indexed by step index) and the run steps seen so far.
    content: list[dict[str, Any] | None] = field(default_factory=list)
    run_steps: list[dict[str, Any]] = field(default_factory=list)
    # 0.8.8: steers queued for the next tool boundary (the fake model has none).
    steers: list[dict[str, Any]] = field(default_factory=list)
    on_all_subscribers_left: Callable[[Job], None] | None = None

    @property
    def created_at_ms(self) -> int:
        return int(self.created_at * 1000)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    # -- content ------------------------------------------------------------------------------

    def set_part(self, index: int, part: dict[str, Any] | None) -> None:
        while len(self.content) <= index:
            self.content.append(None)
        self.content[index] = part

    def part(self, index: int) -> dict[str, Any] | None:
        return self.content[index] if index < len(self.content) else None

    def aggregated_content(self) -> list[dict[str, Any]]:
        return [part for part in self.content if part is not None]

    def persistable_content(self) -> list[dict[str, Any]]:
        """filterPersistableAbortContent: no empty text parts, no empty objects."""
        kept = []
        for part in self.aggregated_content():
            if part.get("type") == "text" and not str(part.get("text", "")).strip():
                continue
            if part:
                kept.append(part)
        return kept

    def resume_state(self) -> dict[str, Any]:
        """getResumeState, in the key order of the captures (undefined keys left out)."""
        state: dict[str, Any] = {
            "runSteps": list(self.run_steps),
            "aggregatedContent": self.aggregated_content(),
            "userMessage": self.user_message,
            "responseMessageId": self.response_message_id,
            "conversationId": self.conversation_id,
            "sender": self.sender,
            "model": self.model,
            "titleEvent": self.title_event,
            "contextUsage": self.context_usage,
        }
        return {k: v for k, v in state.items() if v is not None}

    # -- cancellation from tests ---------------------------------------------------------------

    def cancel_from_any_thread(self) -> None:
        """A reset of the double: stop generating, end open streams, no final, no saves."""
        with contextlib.suppress(RuntimeError):  # the loop is gone with a stopped server
            self.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self.status = "gone"
        if self.task is not None:
            self.task.cancel()
        for subscriber in self.subscribers:
            subscriber.queue.put_nowait((b"", True))


# -- emitting -------------------------------------------------------------------------------


def emit(job: Job, event: dict[str, Any]) -> None:
    """emitChunk: track resume metadata, then deliver or buffer."""
    if job.aborted or job.finished:
        return
    if event.get("created"):
        job.created_event_emitted = True
        message = event["message"]
        job.user_message = {
            "messageId": message.get("messageId"),
            "parentMessageId": message.get("parentMessageId"),
            "conversationId": message.get("conversationId"),
            "text": message.get("text"),
        }
    name = event.get("event")
    if name == "title":
        job.title_event = event
    elif name == "on_context_usage":
        job.context_usage = event.get("data")
    elif name == "on_run_step":
        job.run_steps.append(event["data"])
    frame = sse_frame(event)
    if not job.has_subscriber:
        job.early_buffer.append(frame)
        return
    for subscriber in job.subscribers:
        subscriber.queue.put_nowait((frame, False))


def emit_done(job: Job, event: dict[str, Any]) -> None:
    """emitDone: the final event ends every open stream (and nobody else ever sees it)."""
    job.final_event = event
    frame = sse_frame(event)
    for subscriber in job.subscribers:
        subscriber.queue.put_nowait((frame, True))


def emit_error(job: Job, message: str) -> None:
    job.error = message
    frame = sse_frame({"error": message}, event="error")
    for subscriber in job.subscribers:
        subscriber.queue.put_nowait((frame, True))


def complete(job: Job, *, error: str | None = None) -> None:
    """completeJob: success deletes the job at once; an error keeps it for late subscribers."""
    store = job.store
    if error is not None:
        job.status = "error"
        job.completed_at = store.now()
        job.error = job.error or error
        store.count("generations_failed")
    else:
        job.status = "complete"
        store.drop_job(job)
        store.count("generations_completed")
    release(job)


def release(job: Job) -> None:
    """decrementPendingRequest, once per job."""
    if not job.request_released:
        job.request_released = True
        job.store.finish_request(job.user_id, job.data)


def abort(job: Job) -> dict[str, Any]:
    """abortJob: build and send the aborted final, delete the job, stop the generation."""
    content = job.persistable_content()
    early = not content and not job.created_event_emitted
    user = job.user_message
    user_message_id = user.get("messageId") if user else None
    final: dict[str, Any] = {
        "final": True,
        "conversation": None if early else {"conversationId": job.conversation_id},
        "title": "New Chat",
        "requestMessage": (
            {
                "messageId": user_message_id,
                "parentMessageId": user.get("parentMessageId"),
                "conversationId": job.conversation_id,
                "text": user.get("text") or "",
                "isCreatedByUser": True,
            }
            if user
            else None
        ),
        "responseMessage": (
            None
            if early
            else {
                "messageId": job.response_message_id or f"{user_message_id or 'aborted'}_",
                "parentMessageId": user_message_id,
                "conversationId": job.conversation_id,
                "content": content,
                "sender": job.sender or "AI",
                "endpoint": job.endpoint,
                "model": job.model,
                "unfinished": True,
                "error": False,
                "isCreatedByUser": False,
            }
        ),
        "aborted": True,
        "earlyAbort": early,
    }
    emit_done(job, final)
    job.aborted = True
    job.status = "aborted"
    job.store.drop_job(job)
    job.store.count("generations_aborted")
    if job.task is not None:
        job.task.cancel()
    release(job)
    return {"content": content, "text": parse_text_parts(content), "final": final}


def parse_text_parts(parts: list[dict[str, Any]]) -> str:
    result = ""
    for part in parts:
        if part.get("type") != "text":
            continue
        text = str(part.get("text") or "")
        if result and text and not result.endswith(" ") and not text.startswith(" "):
            result += " "
        result += text
    return result


# -- subscribing ------------------------------------------------------------------------------


def subscribe(job: Job, *, resume: bool) -> Subscriber:
    """subscribe / subscribeWithResume, as the stream route calls them."""
    subscriber = Subscriber()
    if resume:
        job.early_buffer = []
        subscriber.queue.put_nowait(
            (
                sse_frame({"sync": True, "resumeState": job.resume_state(), "pendingEvents": []}),
                False,
            )
        )
    if job.status == "error" and job.error is not None:
        subscriber.queue.put_nowait((sse_frame({"error": job.error}, event="error"), True))
        return subscriber
    if not job.has_subscriber:
        for frame in job.early_buffer:
            subscriber.queue.put_nowait((frame, False))
        job.early_buffer = []
        job.has_subscriber = True
    job.subscribers.append(subscriber)
    return subscriber


def unsubscribe(job: Job, subscriber: Subscriber) -> None:
    if subscriber not in job.subscribers:
        return
    job.subscribers.remove(subscriber)
    if job.subscribers or job.finished:
        return
    job.has_subscriber = False
    if job.on_all_subscribers_left is not None:
        job.on_all_subscribers_left(job)
