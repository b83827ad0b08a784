// The chat page. All LibreChat data comes through /api/chat/* (api.js) with our session cookie;
// see docs/chat-ui.md for the flow of a turn (POST, then its event stream), stop and resume.
import * as api from "./api.js";
import { MessageView, h } from "./messages.js";
import { Sidebar } from "./sidebar.js";

const NO_PARENT = "00000000-0000-0000-0000-000000000000";
const RETRY_MS = 5000;
const MODEL_KEY = "hestami.chat.model";
const NOT_AGENT_FREE = new Set(["agents", "assistants", "azureAssistants"]); // need an agent id

const $ = (id) => document.getElementById(id);
const root = $("chat-app");
const el = {
  sidebar: $("sidebar"), backdrop: $("sidebar-backdrop"), toggle: $("sidebar-toggle"), newChat: $("new-chat"),
  title: $("chat-title"), model: $("model-select"), provisioning: $("banner-provisioning"),
  provisioningTitle: $("banner-provisioning-title"), provisioningText: $("banner-provisioning-text"),
  unreachable: $("banner-unreachable"),
  unreachableTitle: $("banner-unreachable-title"), error: $("banner-error"),
  retry: $("retry"), messages: $("messages"), thread: $("thread"), emptyState: $("empty-state"), loading: $("loading"),
  jump: $("jump-latest"), composer: $("composer"), chips: $("attachment-chips"), attach: $("attach"),
  fileInput: $("file-input"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
  codeLabel: $("code-toggle-label"), code: $("code-toggle"), status: $("status"),
  dialog: $("confirm-dialog"), confirmText: $("confirm-text"),
};

const state = {
  active: root.dataset.provisioningState === "active",
  reachable: true,
  userId: root.dataset.librechatUserId,
  chatUrl: root.dataset.chatUrl,
  endpoints: [],
  conversationId: root.dataset.conversationId || null,
  messages: [], // the conversation's stored messages, creation order (a tree by parentMessageId)
  selected: new Map(), // parentMessageId → the child shown (branches from edits and regenerations)
  streaming: null, // {controller, conversationId, isNew, abortRequest}
  uploads: [], // {id, name, status: uploading|ready|failed, record}
  loading: false,
  retryTimer: 0,
  stick: true,
};

const sidebar = new Sidebar({
  list: $("convo-list"), empty: $("convo-empty"), loadMore: $("load-more"), search: $("convo-search"),
  archived: $("show-archived"), chatUrl: state.chatUrl,
  onOpen: (id) => openConversation(id, { push: true }).catch(handleError),
  onDeleted: (id) => {
    if (id === state.conversationId) newChat({ push: true });
  },
  onError: handleError,
  confirm,
});

// -- start-up, provisioning and reachability -------------------------------------------------

bind();
updateControls();
if (state.active) start();
else pollProvisioning();

// Loads the catalogue, the sidebar and the open conversation; LibreChat is reachable once they
// came. A running answer is resumed only after that, on its own (not awaited): reachability
// follows the latest outcome, so a resumed stream that fails brings the banner back, and one that
// works does not hold the banner up until the answer ends.
async function start() {
  clearTimeout(state.retryTimer);
  const id = state.conversationId;
  try {
    await Promise.all([
      loadCatalog(),
      sidebar.reload(),
      id ? openConversation(id, { push: false, resume: false }) : Promise.resolve(newChat({ push: false })),
    ]);
  } catch (error) {
    handleError(error);
    return;
  }
  setReachable(true);
  if (id && state.conversationId === id) resume(id);
}

async function pollProvisioning(status) {
  if (status) showProvisioning(status);
  el.provisioning.hidden = false;
  updateControls();
  const interval = Number(root.dataset.provisioningPollMs) || 1500;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, interval));
    try {
      const response = await fetch("/api/users/me/", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401 || response.status === 403) {
        location.reload(); // logged out or deactivated meanwhile: the page sends the user to log in
        return;
      }
      if (!response.ok) continue;
      const me = await response.json();
      const current = me.librechat && me.librechat.state;
      if (current === "active") {
        state.userId = me.librechat.user_id || state.userId;
        break;
      }
      if (me.librechat) showProvisioning(me.librechat);
    } catch {
      // offline for a moment: ask again
    }
  }
  state.active = true;
  el.provisioning.hidden = true;
  announce("Your chat account is ready.");
  updateControls();
  start();
}

// What the server says about the chat account: still being set up (it goes on by itself), or
// stuck until an administrator acts. The page keeps asking either way: an administrator's fix
// (re-provisioning) opens the chat without a reload.
function showProvisioning({ retrying, message }) {
  el.provisioningTitle.textContent = retrying ? "Setting up your chat account…" : "Your chat account could not be set up.";
  if (message) el.provisioningText.textContent = message;
  el.provisioning.classList.toggle("banner-warn", Boolean(retrying));
  el.provisioning.classList.toggle("banner-error", !retrying);
}

function setReachable(reachable, { starting = false } = {}) {
  state.reachable = reachable;
  el.unreachable.hidden = reachable;
  el.unreachableTitle.textContent = starting ? "The chat service is starting up." : "The chat service is unreachable.";
  clearTimeout(state.retryTimer);
  if (!reachable) state.retryTimer = setTimeout(start, RETRY_MS);
  updateControls();
}

function handleError(error) {
  if (!error || error.name === "AbortError") return;
  if (error.signedOut) {
    location.reload(); // the page sends the user to log in
  } else if (error.unreachable) {
    setReachable(false, { starting: error.starting });
  } else if (error.notProvisioned) {
    if (state.active) {
      state.active = false;
      pollProvisioning({ retrying: error.retrying, message: error.message });
    }
  } else {
    showError(error.message || "Something went wrong.");
  }
}

function showError(text) {
  el.error.textContent = text;
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.error.textContent = "";
}

function announce(text) {
  el.status.textContent = text;
}

// -- endpoints and models ----------------------------------------------------------------------

async function loadCatalog() {
  const [endpoints, models] = await Promise.all([api.get("endpoints"), api.get("models")]);
  state.endpoints = [];
  for (const [name, config] of Object.entries(endpoints || {})) {
    // `userProvide`: LibreChat wants the user's own provider key (`OPENAI_API_KEY=user_provided`),
    // which we do not collect (docs/chat-ui.md); such an endpoint would only fail.
    if (!config || NOT_AGENT_FREE.has(name) || config.userProvide) continue;
    const list = (models && models[name]) || [];
    if (!list.length) continue;
    state.endpoints.push({ name, type: config.type, label: config.modelDisplayLabel || name, models: list });
  }
  const capabilities = (endpoints && endpoints.agents && endpoints.agents.capabilities) || [];
  el.codeLabel.hidden = !capabilities.includes("execute_code");
  const saved = localStorage.getItem(MODEL_KEY);
  const groups = state.endpoints.map((endpoint) =>
    h(
      "optgroup",
      { label: endpoint.label },
      ...endpoint.models.map((model) => h("option", { value: `${endpoint.name}\n${model}`, text: model })),
    ),
  );
  el.model.replaceChildren(...(groups.length ? groups : [h("option", { value: "", text: "No models available" })]));
  // The last choice if it is still offered, else the first usable model (never a hidden one).
  if (saved && [...el.model.options].some((o) => o.value === saved)) el.model.value = saved;
  else if (groups.length) el.model.selectedIndex = 0;
  updateControls();
}

function currentModel() {
  const [name, model] = (el.model.value || "").split("\n");
  const endpoint = state.endpoints.find((e) => e.name === name);
  return endpoint && model ? { endpoint, model } : null;
}

// -- controls ------------------------------------------------------------------------------------

function updateControls() {
  const usable = state.active && state.reachable;
  const streaming = Boolean(state.streaming);
  const uploading = state.uploads.some((u) => u.status === "uploading");
  el.prompt.disabled = !usable || streaming;
  el.attach.disabled = !usable || streaming;
  el.model.disabled = !usable || !state.endpoints.length || streaming;
  el.send.disabled = !usable || streaming || uploading || !currentModel() || !el.prompt.value.trim();
  el.send.hidden = streaming;
  el.stop.hidden = !streaming;
  el.stop.disabled = !state.streaming || !state.streaming.conversationId || Boolean(state.streaming.abortRequest);
  el.composer.setAttribute("aria-busy", streaming ? "true" : "false");
  for (const button of el.thread.querySelectorAll(".msg-actions button")) button.disabled = streaming || !usable;
  el.emptyState.hidden = Boolean(state.conversationId) || state.loading || el.thread.childElementCount > 0;
}

function bind() {
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = el.prompt.value.trim();
    if (!text || el.send.disabled) return;
    submit({ text }).catch(handleError);
  });
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.prompt.addEventListener("input", () => {
    growPrompt();
    updateControls();
  });
  el.model.addEventListener("change", () => localStorage.setItem(MODEL_KEY, el.model.value));
  el.stop.addEventListener("click", () => stopGenerating());
  el.retry.addEventListener("click", () => start());
  el.newChat.addEventListener("click", () => {
    newChat({ push: true });
    el.prompt.focus();
  });
  el.attach.addEventListener("click", () => el.fileInput.click());
  el.fileInput.addEventListener("change", () => {
    for (const file of el.fileInput.files) upload(file);
    el.fileInput.value = "";
  });
  el.toggle.addEventListener("click", () => toggleSidebar());
  el.backdrop.addEventListener("click", () => toggleSidebar(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && el.sidebar.classList.contains("open")) {
      toggleSidebar(false);
      el.toggle.focus();
    }
  });
  el.messages.addEventListener("scroll", () => {
    state.stick = nearBottom();
    el.jump.hidden = state.stick;
  });
  el.messages.addEventListener("painted", () => autoscroll());
  el.jump.addEventListener("click", () => {
    state.stick = true;
    autoscroll();
    el.prompt.focus();
  });
  document.addEventListener("convo-renamed", (event) => {
    if (event.detail.id === state.conversationId) setTitle(event.detail.title);
  });
  addEventListener("popstate", () => {
    const match = location.pathname.match(/\/c\/([^/]+)\/?$/);
    if (match) openConversation(decodeURIComponent(match[1]), { push: false }).catch(handleError);
    else newChat({ push: false });
  });
}

function growPrompt() {
  el.prompt.style.height = "auto";
  el.prompt.style.height = `${Math.min(el.prompt.scrollHeight, 192)}px`;
}

function toggleSidebar(open = !el.sidebar.classList.contains("open")) {
  el.sidebar.classList.toggle("open", open);
  el.backdrop.hidden = !open;
  el.toggle.setAttribute("aria-expanded", String(open));
  if (open) el.newChat.focus();
}

function nearBottom() {
  const box = el.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
}

// Follows the answer while the reader is at the bottom; stops as soon as they scroll up.
function autoscroll() {
  if (state.stick) el.messages.scrollTop = el.messages.scrollHeight;
  else el.jump.hidden = false;
}

function setTitle(title) {
  el.title.textContent = title || "New chat";
  document.title = `${title || "New chat"} · Hestami AI`;
}

function confirm(text) {
  el.confirmText.textContent = text;
  el.dialog.returnValue = "";
  el.dialog.showModal();
  return new Promise((resolve) => {
    el.dialog.addEventListener("close", () => resolve(el.dialog.returnValue === "ok"), { once: true });
  });
}

// -- conversations -----------------------------------------------------------------------------

function detachStream() {
  // Stops reading, not generating: LibreChat carries on and the answer can be resumed.
  if (state.streaming) state.streaming.controller.abort();
  state.streaming = null;
}

function newChat({ push }) {
  detachStream();
  state.conversationId = null;
  state.messages = [];
  state.selected.clear();
  if (push && location.pathname !== state.chatUrl) history.pushState(null, "", state.chatUrl);
  sidebar.setCurrent(null);
  setTitle("New chat");
  el.thread.replaceChildren();
  toggleSidebar(false);
  updateControls();
}

// Shows a stored conversation; a running answer in it is then resumed (unless `resume: false`,
// start() resumes after it has set the page reachable).
async function openConversation(id, { push, resume: resumeRunning = true }) {
  detachStream();
  clearError();
  state.conversationId = id;
  state.messages = [];
  state.selected.clear();
  if (push) history.pushState(null, "", `${state.chatUrl}c/${encodeURIComponent(id)}/`);
  sidebar.setCurrent(id);
  setTitle(sidebar.titleOf(id) || "");
  toggleSidebar(false);
  el.thread.replaceChildren();
  setLoading(true);
  try {
    const [convo, messages] = await Promise.all([api.get(`convos/${encodeURIComponent(id)}`), api.get(`messages/${encodeURIComponent(id)}`)]);
    if (state.conversationId !== id) return;
    setTitle(convo && convo.title);
    state.messages = Array.isArray(messages) ? messages : [];
    state.stick = true;
    renderThread();
  } catch (error) {
    if (state.conversationId !== id) return;
    if (error.status === 404) {
      newChat({ push: false });
      showError("This conversation does not exist (any more).");
      return;
    }
    throw error;
  } finally {
    if (state.conversationId === id) setLoading(false);
  }
  if (resumeRunning && state.conversationId === id) resume(id);
}

// Not awaited: a resumed answer can run for minutes, and its failures are handled as they come.
function resume(id) {
  resumeIfRunning(id).catch(handleError);
}

function setLoading(on) {
  state.loading = on;
  el.loading.hidden = !on;
  el.messages.setAttribute("aria-busy", on ? "true" : "false");
  updateControls();
}

// -- the thread ----------------------------------------------------------------------------------

function children() {
  const byParent = new Map();
  for (const message of state.messages) {
    const parent = message.parentMessageId || NO_PARENT;
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(message);
  }
  return byParent;
}

// The branch on show: from the root, the selected child at each step (else the newest).
function threadPath(until = null) {
  const byParent = children();
  const path = [];
  const seen = new Set();
  let parent = NO_PARENT;
  while (byParent.has(parent)) {
    const siblings = byParent.get(parent);
    const chosen = siblings.find((m) => m.messageId === state.selected.get(parent)) || siblings[siblings.length - 1];
    if (seen.has(chosen.messageId)) break;
    seen.add(chosen.messageId);
    path.push({ message: chosen, siblings });
    if (chosen.messageId === until) break;
    parent = chosen.messageId;
  }
  return path;
}

function renderThread({ until = null } = {}) {
  const path = threadPath(until);
  const last = path.length - 1;
  el.thread.replaceChildren(
    ...path.map(({ message, siblings }, index) => messageView(message, siblings, index === last && !until).element),
  );
  updateControls();
  autoscroll();
}

function messageView(message, siblings, isLast) {
  const actions = [];
  if (message.isCreatedByUser) {
    actions.push(h("button", { type: "button", text: "Edit", "aria-label": "Edit and resend this message", onclick: (e) => editMessage(e, message) }));
  } else if (isLast) {
    actions.push(h("button", { type: "button", text: "Regenerate", "aria-label": "Regenerate this answer", onclick: () => regenerate(message) }));
  }
  let branch = null;
  if (siblings.length > 1) {
    const position = siblings.indexOf(message);
    const go = (offset) => () => {
      const parent = message.parentMessageId || NO_PARENT;
      state.selected.set(parent, siblings[position + offset].messageId);
      renderThread();
    };
    branch = h(
      "span",
      { className: "branch-nav" },
      h("button", { type: "button", text: "‹", "aria-label": "Previous version", disabled: position === 0, onclick: go(-1) }),
      h("span", { text: `${position + 1} / ${siblings.length}` }),
      h("button", { type: "button", text: "›", "aria-label": "Next version", disabled: position === siblings.length - 1, onclick: go(1) }),
    );
  }
  return new MessageView(message, { fallbackUserId: state.userId, onError: handleError, actions, branch });
}

function editMessage(event, message) {
  const article = event.target.closest("article");
  const body = article.querySelector(".msg-body");
  const area = h("textarea", { "aria-label": "Edit your message" });
  area.value = message.text || "";
  const cancel = () => renderThread();
  const save = () => {
    const text = area.value.trim();
    if (!text) return;
    // A new user message under the same parent: a new branch, as LibreChat's "Save & Submit".
    submit({ text, parentMessageId: message.parentMessageId || NO_PARENT, files: message.files || [] }).catch(handleError);
  };
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      save();
    } else if (e.key === "Escape") {
      cancel();
    }
  });
  body.replaceChildren(
    h(
      "div",
      { className: "msg-edit" },
      area,
      h(
        "div",
        { className: "row" },
        h("button", { type: "button", className: "btn btn-small", text: "Save & submit", onclick: save }),
        h("button", { type: "button", className: "btn btn-small btn-ghost", text: "Cancel", onclick: cancel }),
      ),
    ),
  );
  area.focus();
}

function regenerate(answer) {
  const question = state.messages.find((m) => m.messageId === answer.parentMessageId);
  if (question) submit({ text: question.text || "", regenerateOf: question }).catch(handleError);
}

// -- a turn: POST, then its stream --------------------------------------------------------------

function lastMessageId() {
  const path = threadPath();
  return path.length ? path[path.length - 1].message.messageId : NO_PARENT;
}

async function submit({ text, parentMessageId, regenerateOf = null, files = null }) {
  const choice = currentModel();
  if (!choice || state.streaming) return;
  clearError();
  const { endpoint, model } = choice;
  const isNew = !state.conversationId;
  const fromComposer = !regenerateOf && files === null;
  const records = fromComposer ? state.uploads.filter((u) => u.status === "ready").map((u) => u.record) : files || [];
  const question = regenerateOf || {
    messageId: api.uuid4(),
    parentMessageId: parentMessageId || lastMessageId(),
    conversationId: state.conversationId,
    text,
    sender: "User",
    isCreatedByUser: true,
    createdAt: new Date().toISOString(),
    files: records,
  };
  const body = {
    text: question.text,
    sender: "User",
    clientTimestamp: new Date().toISOString().slice(0, 19),
    isCreatedByUser: true,
    parentMessageId: question.parentMessageId || NO_PARENT,
    conversationId: state.conversationId,
    messageId: question.messageId,
    error: false,
    responseMessageId: null,
    overrideParentMessageId: regenerateOf ? regenerateOf.messageId : null,
    endpoint: endpoint.name,
    endpointType: endpoint.type,
    model,
    modelDisplayLabel: endpoint.label,
    isTemporary: false,
    isRegenerate: Boolean(regenerateOf),
    editedContent: null,
    isContinued: false,
    ephemeralAgent: { mcp: [], execute_code: el.code.checked, file_search: false, web_search: false, artifacts: false },
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  };
  if (records.length) {
    body.files = records.map((f) => {
      const file = { file_id: f.file_id, filepath: f.filepath, type: f.type };
      if (f.width && f.height) Object.assign(file, { width: f.width, height: f.height });
      return file;
    });
  }
  if (!regenerateOf) {
    state.messages.push(question);
    state.selected.set(question.parentMessageId || NO_PARENT, question.messageId);
  }
  const stream = { controller: new AbortController(), conversationId: state.conversationId, isNew, abortRequest: null };
  state.streaming = stream;
  state.stick = true;
  renderThread({ until: question.messageId });
  const answer = new MessageView(
    { isCreatedByUser: false, sender: endpoint.label, createdAt: new Date().toISOString(), parentMessageId: question.messageId },
    { fallbackUserId: state.userId, onError: handleError, streaming: true },
  );
  el.thread.append(answer.element);
  const draft = el.prompt.value;
  if (fromComposer) {
    el.prompt.value = "";
    growPrompt();
    state.uploads = [];
    renderChips();
  }
  announce("The assistant is answering…");
  updateControls();
  autoscroll();
  let started;
  try {
    started = await api.post(`agents/chat/${encodeURIComponent(endpoint.name)}`, body, { signal: stream.controller.signal });
    if (!started || typeof started !== "object" || !started.streamId || !started.conversationId) {
      throw new api.ApiError(200, "bad_start", "The chat service did not start the answer. Please try again.");
    }
  } catch (error) {
    // Every failure before the stream puts the composer back as it was (draft included).
    if (state.streaming === stream) {
      state.streaming = null;
      if (!regenerateOf) state.messages = state.messages.filter((m) => m !== question);
      if (fromComposer) {
        el.prompt.value = draft;
        growPrompt();
      }
      announce("");
      renderThread();
    }
    throw error;
  }
  stream.conversationId = started.conversationId;
  if (isNew && state.streaming === stream) {
    state.conversationId = started.conversationId;
    history.replaceState(null, "", `${state.chatUrl}c/${encodeURIComponent(started.conversationId)}/`);
    sidebar.upsert({ conversationId: started.conversationId, title: "New Chat" }, { top: true });
    sidebar.setCurrent(started.conversationId);
    setTitle("New Chat");
  } else {
    const title = sidebar.titleOf(started.conversationId) || el.title.textContent;
    sidebar.upsert({ conversationId: started.conversationId, title }, { top: true });
  }
  updateControls();
  await follow(stream, started.streamId, answer, { resume: false, question });
}

async function resumeIfRunning(id) {
  let status;
  try {
    status = await api.get(`agents/chat/status/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.unreachable) throw error;
    return; // nothing to resume
  }
  if (!status || !status.active || state.conversationId !== id || state.streaming) return;
  const resume = status.resumeState || {};
  // The partial answer saved when the last reader left is replaced by the live one.
  state.messages = state.messages.filter((m) => m.messageId !== resume.responseMessageId);
  const question = resume.userMessage || {};
  if (question.messageId && !state.messages.some((m) => m.messageId === question.messageId)) {
    state.messages.push({ ...question, isCreatedByUser: true, createdAt: new Date(status.createdAt || Date.now()).toISOString() });
  }
  if (question.messageId) state.selected.set(question.parentMessageId || NO_PARENT, question.messageId);
  const stream = { controller: new AbortController(), conversationId: id, isNew: false, abortRequest: null };
  state.streaming = stream;
  renderThread({ until: question.messageId || null });
  const answer = new MessageView(
    {
      messageId: resume.responseMessageId,
      isCreatedByUser: false,
      sender: resume.sender,
      createdAt: new Date(status.createdAt || Date.now()).toISOString(),
      parentMessageId: question.messageId,
    },
    { fallbackUserId: state.userId, onError: handleError, streaming: true },
  );
  el.thread.append(answer.element);
  announce("Resuming the answer that is still being written…");
  updateControls();
  autoscroll();
  await follow(stream, status.streamId || id, answer, { resume: true, question });
}

function streamError(data) {
  let detail = data && (data.error ?? data.message ?? data.text);
  if (typeof detail === "string") {
    try {
      detail = JSON.parse(detail);
    } catch {
      return detail;
    }
  }
  if (detail && detail.type === "endpoint_models_not_loaded") return `The model endpoint “${detail.info}” is not available.`;
  return (detail && (detail.message || detail.type)) || "The answer failed.";
}

async function follow(stream, streamId, answer, { resume, question }) {
  const turn = { steps: new Map(), answer, question }; // steps: run step id → content index
  let final = null;
  let failed = false;
  let gone = false;
  try {
    const path = `agents/chat/stream/${encodeURIComponent(streamId)}${resume ? "?resume=true" : ""}`;
    for await (const event of api.events(path, { signal: stream.controller.signal })) {
      if (event.name === "error") {
        answer.setError(streamError(event.data));
        failed = true;
        break;
      }
      final = applyEvent(event.data, turn);
      if (final) break;
    }
  } catch (error) {
    if (error.name === "AbortError") return; // the page moved on; LibreChat keeps generating
    if (error.status === 404) {
      gone = true; // it finished between the POST (or status) and the subscription
    } else {
      answer.setError(error.unreachable ? "The chat service went away while answering." : error.message);
      failed = true;
      handleError(error);
    }
  } finally {
    answer.setStreaming(false);
    if (state.streaming === stream) state.streaming = null;
    updateControls();
  }
  if (final || gone) await onFinal(final || {}, stream);
  else if (!failed && !stream.controller.signal.aborted) answer.setError("The answer was interrupted.");
  announce(final && final.aborted ? "Stopped." : "The answer is complete.");
  if (document.activeElement === document.body) el.prompt.focus();
}

// One event of a turn's stream (or one of a `sync` event's pendingEvents). Returns the `final`
// event when the answer is complete, else null.
function applyEvent(data, turn) {
  if (!data || typeof data !== "object") return null;
  if (data.created) {
    onCreated(data, turn.question);
  } else if (data.sync) {
    return onSync(data, turn);
  } else if (data.final) {
    return data;
  } else {
    onRunEvent(data, turn.steps, turn.answer);
  }
  return null;
}

function onCreated(data, question) {
  // The server replaces our user messageId with its own.
  const id = data.message && data.message.messageId;
  if (!id || question.messageId === id) return;
  const old = question.messageId;
  question.messageId = id;
  for (const [parent, child] of state.selected) if (child === old) state.selected.set(parent, id);
  el.thread.querySelector(`[data-message-id="${CSS.escape(old)}"]`)?.setAttribute("data-message-id", id);
}

// A resume's snapshot: the answer so far, then the events LibreChat emitted between taking the
// snapshot and subscribing us (`pendingEvents`), applied like live ones, in order.
function onSync(data, turn) {
  const resumeState = data.resumeState || {};
  for (const step of resumeState.runSteps || []) turn.steps.set(step.id, step.index);
  turn.answer.setParts(structuredClone(resumeState.aggregatedContent || []));
  if (resumeState.titleEvent) onTitle(resumeState.titleEvent.data);
  for (const pending of Array.isArray(data.pendingEvents) ? data.pendingEvents : []) {
    if (pending && pending.sync) continue;
    const final = applyEvent(pending, turn);
    if (final) return final;
  }
  return null;
}

function onRunEvent(data, steps, answer) {
  const payload = data.data || {};
  switch (data.event) {
    case "on_run_step": {
      steps.set(payload.id, payload.index);
      const details = payload.stepDetails || {};
      if (details.type === "tool_calls") {
        for (const call of details.tool_calls || []) answer.startTool(payload.index, call);
      }
      break;
    }
    case "on_message_delta": {
      const index = steps.get(payload.id) ?? 0;
      for (const piece of (payload.delta && payload.delta.content) || []) {
        if (piece.type === "text") answer.appendText(index, piece.text || "");
      }
      break;
    }
    case "on_run_step_delta": {
      const index = steps.get(payload.id);
      for (const chunk of (payload.delta && payload.delta.tool_calls) || []) answer.appendArgs(index, chunk.args || "");
      break;
    }
    case "on_run_step_completed": {
      const call = payload.result && payload.result.tool_call;
      if (call) answer.completeTool(call);
      break;
    }
    case "attachment":
      answer.addAttachment(payload);
      autoscroll();
      break;
    case "title":
      onTitle(payload);
      break;
    default:
      break; // on_context_usage and others: nothing to show
  }
}

function onTitle({ conversationId, title }) {
  if (!conversationId || !title) return;
  sidebar.upsert({ conversationId, title });
  if (conversationId === state.conversationId) setTitle(title);
}

async function onFinal(final, stream) {
  const id = stream.conversationId;
  if (final.aborted) {
    // LibreChat saves the partial answer while it answers the abort request: wait for that.
    if (stream.abortRequest) await stream.abortRequest.catch(() => {});
    // An aborted first turn keeps "New Chat" (the title is dropped).
    if (stream.isNew) onTitle({ conversationId: id, title: final.title || "New Chat" });
  }
  const request = final.requestMessage;
  const response = final.responseMessage;
  if (request && request.messageId) state.selected.set(request.parentMessageId || NO_PARENT, request.messageId);
  if (response && response.messageId) state.selected.set(response.parentMessageId, response.messageId);
  if (id !== state.conversationId) return;
  try {
    const messages = await api.get(`messages/${encodeURIComponent(id)}`);
    if (id !== state.conversationId || state.streaming) return;
    state.messages = Array.isArray(messages) ? messages : state.messages;
    renderThread();
  } catch (error) {
    handleError(error);
  }
}

async function stopGenerating() {
  const stream = state.streaming;
  if (!stream || !stream.conversationId || stream.abortRequest) return;
  clearError();
  const request = api.post("agents/chat/abort", { conversationId: stream.conversationId });
  stream.abortRequest = request;
  updateControls();
  announce("Stopping…");
  try {
    await request;
  } catch (error) {
    if (stream.abortRequest === request) stream.abortRequest = null; // Stop can be pressed again
    updateControls();
    if (error.status === 404) return; // it had just finished
    if (error.notProvisioned) {
      handleError(error);
      return;
    }
    // The answer is still streaming (so LibreChat is there): say so, and leave Stop usable.
    const text = "Could not stop the answer. Please try again.";
    showError(text);
    announce(text);
  }
}

// -- attachments -----------------------------------------------------------------------------

async function upload(file) {
  const choice = currentModel();
  if (!choice) return;
  const item = { id: api.uuid4(), name: file.name, status: "uploading", record: null };
  state.uploads.push(item);
  renderChips();
  updateControls();
  // The field order of LibreChat's web client (useFileHandling).
  const form = new FormData();
  form.append("endpoint", choice.endpoint.name);
  if (choice.endpoint.type) form.append("endpointType", choice.endpoint.type);
  form.append("file", file, file.name);
  form.append("file_id", item.id);
  form.append("message_file", "true");
  if (el.code.checked && !el.codeLabel.hidden) form.append("tool_resource", "execute_code");
  try {
    item.record = await api.request("POST", "files", { form });
    item.status = "ready";
    announce(`${file.name} is attached.`);
  } catch (error) {
    item.status = "failed";
    handleError(error);
  }
  renderChips();
  updateControls();
}

function renderChips() {
  el.chips.replaceChildren(
    ...state.uploads.map((item) =>
      h(
        "span",
        { className: `attachment-chip ${item.status}`, "data-testid": "attachment-chip", "data-status": item.status },
        h("span", { text: item.name }),
        h("span", { className: "muted", text: item.status === "uploading" ? "uploading…" : item.status === "failed" ? "failed" : "" }),
        h("button", {
          type: "button",
          text: "×",
          "aria-label": `Remove ${item.name}`,
          onclick: () => {
            state.uploads = state.uploads.filter((u) => u !== item);
            renderChips();
            updateControls();
            el.prompt.focus();
          },
        }),
      ),
    ),
  );
}
