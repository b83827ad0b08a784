"""One chat turn in the background, as LibreChat's ResumableAgentController runs it.

(`api/server/controllers/agents/request.js`, `api/app/clients/BaseClient.js`,
`api/server/services/Endpoints/agents/title.js`.) The POST has already answered
`{"streamId","conversationId","status":"started"}`; this task then:

1. waits `fake_start_delay_s` (agent initialisation). An endpoint the double does not serve
   fails here with the stringified `endpoint_models_not_loaded` error event;
2. assigns the user `messageId` (the client's is discarded) and the response id, emits
   `created` and `on_context_usage`, saves the user message and the conversation
   ("New Chat"), and starts the title in parallel on a new conversation's first turn;
3. plays the fake model's script (fake_model.py), aggregating content parts by step index;
4. saves the response (`text` "", the answer in `content`), emits `final` with the
   conversation as saved *before* the title landed (so `final.title` is "New Chat"), deletes
   the job, then stores the title.

An abort (jobs.abort) cancels this task; a client disconnect does not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from .chat_store import ChatStore
from .config import DoubleConfig
from .fake_model import (
    CODE_FILE_ID,
    CODE_REPLY,
    CODE_SESSION_ID,
    COMPLETION_TOKENS,
    CONTEXT_BUDGET,
    LLM_ERROR_TEXT,
    MAX_CONTEXT_TOKENS,
    PLAIN_REPLY,
    PLOT_FILENAME,
    PLOT_HEIGHT,
    PLOT_PNG,
    PLOT_WIDTH,
    TOOL_ARG_CHUNKS,
    TOOL_COUNT,
    TOOL_NAME,
    TOOL_OUTPUT,
    TOOL_SCHEMA_TOKENS,
    Script,
    choose_script,
    echo_reply,
    markdown_reply,
    slow_reply,
    token_count,
)
from .ids import NO_PARENT, completion_id, epoch_ms, nanoid, new_uuid, step_id, tool_call_id
from .jobs import Job, complete, emit, emit_done, emit_error, release

log = logging.getLogger(__name__)
TEMPORARY_CHAT_RETENTION_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Turn:
    """What the chat POST asked for, after LibreChat's middleware had its say."""

    user_id: str
    body: dict[str, Any]
    endpoint: str
    conversation_id: str
    is_new_convo: bool


def agent_id_for(endpoint: str, model: str) -> str:
    """The id of an ephemeral agent on a model endpoint: `<endpoint>__<model>___<endpoint>`."""
    return f"{endpoint}__{model}___{endpoint}"


def response_sender(body: dict[str, Any], config: DoubleConfig) -> str:
    """getResponseSender, for the endpoints the double knows: the display label, else "AI"."""
    label = body.get("modelDisplayLabel")
    if isinstance(label, str) and label:
        return label
    if body.get("endpoint") == config.fake_endpoint:
        return config.fake_endpoint
    return "AI"


class Generation:
    def __init__(self, store: ChatStore, config: DoubleConfig, job: Job, turn: Turn) -> None:
        self.store = store
        self.config = config
        self.job = job
        self.turn = turn
        body = turn.body
        self.text = str(body.get("text") or "")
        parent = body.get("parentMessageId")
        self.parent_message_id = parent if isinstance(parent, str) and parent else NO_PARENT
        self.user_message_id = _override_user_message_id(body) or new_uuid()
        response_id = body.get("responseMessageId")
        self.response_message_id = (
            response_id if isinstance(response_id, str) and response_id else new_uuid()
        )
        if body.get("isRegenerate") is True and self.response_message_id.endswith("_"):
            self.response_message_id = new_uuid()
        model = body.get("model")
        self.model = model if isinstance(model, str) and model else config.fake_model
        self.sender = response_sender(body, config)
        self.agent_id = agent_id_for(turn.endpoint, self.model)
        ephemeral = body.get("ephemeralAgent")
        self.code_enabled = isinstance(ephemeral, dict) and ephemeral.get("execute_code") is True
        self.temporary = body.get("isTemporary") is True
        self.user_token_count = token_count(self.text)
        self.prompt_tokens = self.user_token_count
        self.user_files: list[dict[str, Any]] = []
        self.attachments: list[dict[str, Any]] = []
        self.partial_saved = False
        self.title_task: asyncio.Task[None] | None = None
        self.accept_title_events = True
        self.response_saved = asyncio.Event()
        # Preliminary resume metadata (updateMetadata before the client is initialised).
        client_id = body.get("messageId")
        job.endpoint = turn.endpoint
        job.model = self.model
        if isinstance(client_id, str) and client_id:
            job.response_message_id = f"{client_id.rstrip('_')}_"
            job.user_message = {
                "messageId": client_id,
                "parentMessageId": body.get("parentMessageId"),
                "conversationId": turn.conversation_id,
                "text": body.get("text"),
            }
        job.on_all_subscribers_left = self._save_partial

    # -- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        job = self.job
        try:
            await self._generate()
        except asyncio.CancelledError:
            self._stop_title(discard=True)
            if job.aborted and self._live():
                self._after_abort()
            elif not job.finished:
                # Reset, replaced, or the server went down: the job is gone without a final.
                job.status = "gone"
                self.store.drop_job(job)
            release(job)
        except Exception as error:
            log.exception("LibreChat double: generation %s failed", job.stream_id)
            self._stop_title(discard=True)
            if not job.finished:
                emit_error(job, str(error) or "Generation failed")
                complete(job, error=str(error) or "Generation failed")

    async def _generate(self) -> None:
        config, job = self.config, self.job
        await asyncio.sleep(config.fake_start_delay_s)
        if self.turn.endpoint in config.user_provided_endpoints:
            # initializeClient finds no key stored with PUT /api/keys (ErrorTypes.NO_USER_KEY).
            error = '{"type":"no_user_key"}'
            emit_error(job, error)
            complete(job, error=error)
            return
        if self.turn.endpoint != config.fake_endpoint:
            error = f'{{ "type": "endpoint_models_not_loaded", "info": "{self.turn.endpoint}" }}'
            emit_error(job, error)
            complete(job, error=error)
            return
        self._start()
        script = choose_script(self.text, code_enabled=self.code_enabled)
        if script is Script.LLM_ERROR:
            await asyncio.sleep(config.fake_llm_error_delay_s)
            job.set_part(0, {"type": "error", "error": LLM_ERROR_TEXT})
        elif script is Script.CODE:
            await self._code_turn()
        elif script is Script.SLOW:
            delay = config.fake_slow_token_delay_s
            words = slow_reply(config.fake_slow_token_count)
            await self._stream_text(0, words, delay, first_delay=delay, message_id=completion_id())
        else:
            delay = config.fake_token_delay_s
            words = PLAIN_REPLY
            if script is Script.MARKDOWN:
                words = markdown_reply()
            elif script is Script.ECHO:
                words = echo_reply(self.text)
            await self._stream_text(0, words, delay, first_delay=delay, message_id=completion_id())
        await asyncio.sleep(config.fake_final_delay_s)
        await self._finish()

    # -- onStart -----------------------------------------------------------------------------

    def _start(self) -> None:
        store, turn, job = self.store, self.turn, self.job
        self._check_live()
        job.response_message_id = self.response_message_id
        job.sender = self.sender
        message = self._user_message()
        created = dict(message)
        if turn.is_new_convo:
            # Serialised late on a new conversation, it already carries the token count.
            created["tokenCount"] = self.user_token_count
        emit(job, {"created": True, "message": created, "streamId": job.stream_id})
        history = store.thread(turn.user_id, turn.conversation_id, self.parent_message_id)
        self.prompt_tokens = (
            sum(int(m.get("tokenCount") or 0) for m in history) + self.user_token_count
        )
        files = self.turn.body.get("files")
        if isinstance(files, list):
            file_ids = [str(f.get("file_id")) for f in files if isinstance(f, dict)]
            self.user_files = store.use_files(turn.user_id, file_ids)
        self._save_user_message()
        emit(job, self._context_usage(len(history) + 1))
        eligible = self.parent_message_id == NO_PARENT and turn.is_new_convo and not self.temporary
        if eligible:
            self.title_task = asyncio.get_running_loop().create_task(self._title())

    def _user_message(self) -> dict[str, Any]:
        return {
            "messageId": self.user_message_id,
            "parentMessageId": self.parent_message_id,
            "conversationId": self.turn.conversation_id,
            "sender": "User",
            "text": self.text,
            "isCreatedByUser": True,
        }

    def _save_user_message(self) -> None:
        store, turn = self.store, self.turn
        self._check_live()
        document = {
            **self._user_message(),
            "tokenCount": self.user_token_count,
            "endpoint": turn.endpoint,
            "model": None,
            **self._retention(),
        }
        if self.user_files:
            document["files"] = self.user_files
        store.save_message(turn.user_id, document)
        existing = store.get_convo(turn.user_id, turn.conversation_id)
        files = list(existing["files"]) if existing else []
        for record in self.user_files:
            if record["file_id"] not in files:
                files.append(record["file_id"])
        store.save_convo(
            turn.user_id,
            turn.conversation_id,
            {
                "agent_id": self.agent_id,
                "endpoint": turn.endpoint,
                "endpointType": "custom",
                "files": files,
                "maxContextTokens": MAX_CONTEXT_TOKENS,
                "model": self.model,
                "resendFiles": True,
                **self._retention(),
            },
            defaults={"chatProjectId": None},
        )

    def _retention(self) -> dict[str, Any]:
        if not self.temporary:
            return {}
        return {
            "isTemporary": True,
            "expiredAt": self.store.now() + TEMPORARY_CHAT_RETENTION_S,
        }

    def _context_usage(self, message_count: int) -> dict[str, Any]:
        tool_tokens = TOOL_SCHEMA_TOKENS if self.code_enabled else 0
        budget = CONTEXT_BUDGET - tool_tokens
        tokens = self.prompt_tokens
        return {
            "event": "on_context_usage",
            "data": {
                "runId": self.response_message_id,
                "agentId": self.agent_id,
                "breakdown": {
                    "maxContextTokens": MAX_CONTEXT_TOKENS,
                    "instructionTokens": 0,
                    "systemMessageTokens": 0,
                    "dynamicInstructionTokens": 0,
                    "toolSchemaTokens": tool_tokens,
                    "summaryTokens": 0,
                    "toolCount": TOOL_COUNT if self.code_enabled else 0,
                    "messageCount": message_count,
                    "messageTokens": tokens,
                    "availableForMessages": budget,
                    "toolTokenCounts": {},
                },
                "contextBudget": budget,
                "effectiveInstructionTokens": 0,
                "prePruneContextTokens": tokens,
                "remainingContextTokens": budget - tokens,
                "calibrationRatio": 1,
            },
        }

    # -- the title (immediate timing) --------------------------------------------------------

    async def _title(self) -> None:
        store, turn = self.store, self.turn
        await asyncio.sleep(self.config.fake_title_delay_s)
        title = self.config.fake_title
        self._check_live()
        store.cache_title(turn.user_id, turn.conversation_id, title)
        if self.accept_title_events:
            data = {"conversationId": turn.conversation_id, "title": title}
            emit(self.job, {"event": "title", "data": data})
        await self.response_saved.wait()
        self._check_live()
        store.save_convo(turn.user_id, turn.conversation_id, {"title": title}, upsert=False)

    def _stop_title(self, *, discard: bool) -> None:
        if self.title_task is not None and not self.title_task.done():
            self.title_task.cancel()
        if discard and self.title_task is not None and self._live():
            self.store.forget_title(self.turn.user_id, self.turn.conversation_id)

    # -- the model's reply -------------------------------------------------------------------

    def _run_step(self, *, index: int, step_index: int, message_id: str) -> str:
        step = step_id()
        data = {
            "stepIndex": step_index,
            "id": step,
            "type": "message_creation",
            "index": index,
            "stepDetails": {
                "type": "message_creation",
                "message_creation": {"message_id": message_id},
            },
            "usage": None,
            "runId": self.response_message_id,
        }
        emit(self.job, {"event": "on_run_step", "data": data})
        return step

    async def _stream_text(
        self,
        index: int,
        words: tuple[str, ...],
        delay: float,
        *,
        first_delay: float,
        message_id: str,
    ) -> None:
        await asyncio.sleep(first_delay)
        step = self._run_step(index=index, step_index=0, message_id=message_id)
        for position, word in enumerate(words):
            if position:
                await asyncio.sleep(delay)
            part = self.job.part(index) or {"type": "text", "text": ""}
            part["text"] += word
            self.job.set_part(index, part)
            delta = {"content": [{"type": "text", "text": word}]}
            emit(self.job, {"event": "on_message_delta", "data": {"id": step, "delta": delta}})

    async def _code_turn(self) -> None:
        """§f of the captures: an empty text step, the bash_tool call, the plot, the answer."""
        job, unit = self.job, self.config.fake_token_delay_s
        await asyncio.sleep(0.07 * unit)
        self._run_step(index=0, step_index=0, message_id=f"msg_{nanoid()}")
        call, step = tool_call_id(), step_id()
        tool_call = {"name": TOOL_NAME, "args": {}, "id": call, "type": "tool_call"}
        emit(
            job,
            {
                "event": "on_run_step",
                "data": {
                    "stepIndex": 1,
                    "id": step,
                    "type": "tool_calls",
                    "index": 1,
                    "stepDetails": {"type": "tool_calls", "tool_calls": [tool_call]},
                    "usage": None,
                    "runId": self.response_message_id,
                },
            },
        )
        part: dict[str, Any] = {
            "type": "tool_call",
            "tool_call": {"id": call, "name": TOOL_NAME, "args": "", "type": "tool_call"},
        }
        job.set_part(1, part)
        first_chunk = {"name": TOOL_NAME, "args": "", "id": call, "index": 0}
        self._tool_delta(step, {**first_chunk, "type": "tool_call_chunk"})
        await asyncio.sleep(0.48 * unit)
        for position, chunk in enumerate(TOOL_ARG_CHUNKS):
            if position:
                await asyncio.sleep(0.5 * unit)
            part["tool_call"]["args"] += chunk
            self._tool_delta(step, {"args": chunk, "index": 0, "type": "tool_call_chunk"})
        await asyncio.sleep(0.23 * unit)
        args = json.dumps(json.loads(part["tool_call"]["args"]), separators=(",", ":"))
        part["tool_call"] = {
            "id": call,
            "name": TOOL_NAME,
            "args": args,
            "type": "tool_call",
            "progress": 1,
            "output": TOOL_OUTPUT,
        }
        completed = {"args": args, "name": TOOL_NAME, "id": call, "output": TOOL_OUTPUT}
        result = {
            "id": step,
            "index": 0,
            "type": "tool_call",
            "tool_call": {**completed, "progress": 1},
        }
        emit(job, {"event": "on_run_step_completed", "data": {"result": result}})
        self.prompt_tokens += COMPLETION_TOKENS
        emit(job, self._context_usage(3))
        await asyncio.sleep(0.28 * unit)
        attachment = self._store_plot(call)
        self.attachments.append(attachment)
        emit(job, {"event": "attachment", "data": attachment})
        await asyncio.sleep(0.73 * unit)
        await self._stream_text(2, CODE_REPLY, unit, first_delay=0.0, message_id=completion_id())

    def _tool_delta(self, step: str, chunk: dict[str, Any]) -> None:
        delta = {"type": "tool_calls", "tool_calls": [chunk]}
        emit(self.job, {"event": "on_run_step_delta", "data": {"id": step, "delta": delta}})

    def _store_plot(self, call: str) -> dict[str, Any]:
        """processCodeOutput: download, re-encode and keep the file; re-runs reuse its id."""
        store, turn = self.store, self.turn
        self._check_live()
        existing = store.code_output_file(turn.user_id, turn.conversation_id, PLOT_FILENAME)
        code_ref = {
            "kind": "user",
            "id": turn.user_id,
            "storage_session_id": CODE_SESSION_ID,
            "file_id": CODE_FILE_ID,
        }
        fields: dict[str, Any] = {
            "bytes": len(PLOT_PNG),
            "context": "execute_code",
            "conversationId": turn.conversation_id,
            "filename": PLOT_FILENAME,
            "height": PLOT_HEIGHT,
            "messageId": self.response_message_id,
            "metadata": {"codeEnvRef": code_ref},
            "source": "local",
            "type": "image/png",
            "width": PLOT_WIDTH,
        }
        if existing is None:
            file_id = new_uuid()
            fields["filepath"] = f"/images/{turn.user_id}/{file_id}.png"
            fields["usage"] = 1
            record = store.add_file(turn.user_id, file_id, fields, data=PLOT_PNG)
        else:
            file_id = existing.file_id
            version = epoch_ms(store.now())
            fields["filepath"] = f"/images/{turn.user_id}/{file_id}.png?v={version}"
            fields["usage"] = int(existing.fields.get("usage", 0)) + 2
            record = store.update_file(file_id, fields) or {}
        return {
            "filepath": fields["filepath"],
            "bytes": fields["bytes"],
            "width": PLOT_WIDTH,
            "height": PLOT_HEIGHT,
            "file_id": file_id,
            "messageId": self.response_message_id,
            "usage": fields["usage"],
            "filename": PLOT_FILENAME,
            "conversationId": turn.conversation_id,
            "user": turn.user_id,
            "type": "image/png",
            "createdAt": record.get("createdAt"),
            "updatedAt": record.get("updatedAt"),
            "source": "local",
            "context": "execute_code",
            "metadata": {"codeEnvRef": code_ref},
            "toolCallId": call,
        }

    # -- the end of the turn -----------------------------------------------------------------

    async def _finish(self) -> None:
        store, turn, job = self.store, self.turn, self.job
        self._check_live()
        content = job.aggregated_content()
        response = {
            "messageId": self.response_message_id,
            "conversationId": turn.conversation_id,
            "parentMessageId": self.user_message_id,
            "isCreatedByUser": False,
            "isEdited": False,
            "model": self.model,
            "sender": self.sender,
            "promptTokens": self.prompt_tokens,
            "endpoint": turn.endpoint,
            "text": "",
            "content": content,
            "tokenCount": COMPLETION_TOKENS,
            "attachments": self.attachments,
        }
        self._save_user_message()
        store.save_message(
            turn.user_id,
            {
                "messageId": self.response_message_id,
                "attachments": self.attachments,
                "content": content,
                "conversationId": turn.conversation_id,
                "endpoint": turn.endpoint,
                "error": False,
                "isCreatedByUser": False,
                "model": self.model,
                "parentMessageId": self.user_message_id,
                "sender": self.sender,
                "text": "",
                "tokenCount": COMPLETION_TOKENS,
                "unfinished": False,
                **self._retention(),
            },
        )
        conversation = store.get_convo(turn.user_id, turn.conversation_id) or {}
        request_message = {**self._user_message(), "tokenCount": self.user_token_count}
        if self.user_files:
            request_message["files"] = self.user_files
        # convoReady: a title generated from now on is stored but no longer sent as an event.
        self.accept_title_events = False
        self.response_saved.set()
        final = {
            "final": True,
            "conversation": conversation,
            "title": conversation.get("title"),
            "requestMessage": request_message,
            "responseMessage": response,
        }
        emit_done(job, final)
        complete(job)
        if self.title_task is not None:
            await self.title_task

    def _save_partial(self, job: Job) -> None:
        """The last subscriber left a running job: save what there is, `unfinished`."""
        if self.partial_saved or job.finished or not self._live():
            return
        content = job.persistable_content()
        if not content or not job.created_event_emitted:
            return
        self.partial_saved = True
        self.store.save_message(
            self.turn.user_id,
            {
                "messageId": self.response_message_id,
                "conversationId": self.turn.conversation_id,
                "parentMessageId": self.user_message_id,
                "sender": self.sender,
                "content": content,
                "unfinished": True,
                "error": False,
                "isCreatedByUser": False,
                "endpoint": self.turn.endpoint,
                "model": self.model,
            },
        )

    def _after_abort(self) -> None:
        """Aborted before `created`: the user message and an empty, finished answer remain."""
        if self.job.created_event_emitted:
            return
        turn = self.turn
        self._save_user_message()
        self.store.save_message(
            turn.user_id,
            {
                "messageId": self.response_message_id,
                "attachments": [],
                "content": [],
                "conversationId": turn.conversation_id,
                "endpoint": turn.endpoint,
                "isCreatedByUser": False,
                "model": self.model,
                "parentMessageId": self.user_message_id,
                "sender": self.sender,
                "text": "",
                "unfinished": False,
            },
        )

    # -- a reset of the double mid-turn ------------------------------------------------------

    def _live(self) -> bool:
        return self.job.data is self.store.data and self.job.status != "gone"

    def _check_live(self) -> None:
        if not self._live():
            raise asyncio.CancelledError


def _override_user_message_id(body: dict[str, Any]) -> str | None:
    """overrideUserMessageId (`id__index`) or overrideParentMessageId (regenerate)."""
    override = body.get("overrideUserMessageId")
    if isinstance(override, str) and override:
        return override.split("__")[0]
    parent_override = body.get("overrideParentMessageId")
    if isinstance(parent_override, str) and parent_override:
        return parent_override
    return None
