// One message on the page: a user message (plain text, never HTML) or an assistant message
// (content parts: Markdown text, tool calls, errors; attachments). Streaming updates go through
// the view's methods and are painted at most once per animation frame.
import { download, filePath, imageUrl, isImage } from "./files.js";
import { renderMarkdown } from "./markdown.js";

const h = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
};
export { h };

export function formatTime(value) {
  const date = value ? new Date(value) : new Date();
  if (Number.isNaN(date.getTime())) return { iso: "", label: "", full: "" };
  const sameDay = date.toDateString() === new Date().toDateString();
  const label = sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return { iso: date.toISOString(), label, full: date.toLocaleString() };
}

function toolText(args) {
  if (!args) return "";
  try {
    const parsed = JSON.parse(args);
    if (parsed && typeof parsed === "object") return parsed.command ?? parsed.code ?? JSON.stringify(parsed, null, 2);
  } catch {
    // still streaming: raw fragments
  }
  return String(args);
}

export function fileView(file, { fallbackUserId, onError }) {
  const path = filePath(file, fallbackUserId);
  const name = String(file.filename || "file");
  const size = Number(file.bytes) > 0 ? ` · ${formatBytes(Number(file.bytes))}` : "";
  const save = async () => {
    try {
      await download(path, name);
    } catch (error) {
      onError(error);
    }
  };
  const chip = h(
    "button",
    { type: "button", className: "file-chip", "data-testid": "file-download", "aria-label": `Download ${name}`, onclick: save },
    h("span", { "aria-hidden": "true", text: "⬇" }),
    h("span", { text: name }),
    h("span", { className: "muted", text: size.slice(3) }),
  );
  if (!isImage(file)) return chip;
  const img = h("img", { alt: name, "data-testid": "file-image", width: file.width || undefined, height: file.height || undefined });
  // Its height is known only now: let the log follow it down if the reader is at the bottom.
  img.addEventListener("load", () => img.dispatchEvent(new CustomEvent("painted", { bubbles: true })));
  imageUrl(path, file.type).then(
    (url) => {
      img.src = url;
    },
    (error) => {
      img.alt = `${name} (could not be loaded)`;
      onError(error);
    },
  );
  return h("figure", { className: "file-figure" }, img, chip);
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// The parts of a stored assistant message: `content[]`, or `text` (aborted partials have both).
export function partsOf(message) {
  if (Array.isArray(message.content) && message.content.length) return message.content.filter(Boolean);
  return message.text ? [{ type: "text", text: message.text }] : [];
}

export class MessageView {
  constructor(message, { fallbackUserId, onError, actions = [], branch = null, streaming = false }) {
    this.message = message;
    this.user = Boolean(message.isCreatedByUser);
    this.fallbackUserId = fallbackUserId;
    this.onError = onError;
    this.parts = this.user ? [] : partsOf(message).map((part) => structuredClone(part));
    this.attachments = [...(message.attachments || [])];
    this.error = null;
    this.frame = 0;
    const time = formatTime(message.createdAt);
    this.content = h("div", { className: "msg-content", "data-testid": "message-content" });
    this.filesBox = h("div", { className: "files" });
    this.actions = h("div", { className: "msg-actions" });
    this.body = h(
      "div",
      { className: "msg-body" },
      h(
        "div",
        { className: "msg-head" },
        h("span", { className: "msg-author", text: this.user ? "You" : message.sender || "Assistant" }),
        h("time", { datetime: time.iso, title: time.full, text: time.label }),
      ),
      this.content,
      this.filesBox,
      this.actions,
    );
    this.element = h(
      "article",
      {
        className: `msg ${this.user ? "msg-user" : "msg-assistant"}`,
        "data-role": this.user ? "user" : "assistant",
        "data-message-id": message.messageId || "",
        "aria-label": this.user ? "Your message" : "Assistant message",
      },
      h("div", { className: "msg-avatar", "aria-hidden": "true", text: this.user ? "You" : "AI" }),
      this.body,
    );
    if (branch) this.actions.append(branch);
    this.actions.append(...actions);
    this.actions.hidden = !this.actions.childElementCount;
    this.setStreaming(streaming);
    this.paint();
    this.paintFiles();
  }

  setId(messageId) {
    this.message.messageId = messageId;
    this.element.dataset.messageId = messageId;
  }

  setStreaming(on) {
    this.streaming = on;
    this.element.classList.toggle("msg-streaming", on);
    this.element.setAttribute("aria-busy", on ? "true" : "false");
  }

  setParts(parts) {
    this.parts = parts.filter(Boolean);
    this.schedule();
  }

  part(index, type) {
    if (!this.parts[index]) this.parts[index] = type === "text" ? { type: "text", text: "" } : { type };
    return this.parts[index];
  }

  appendText(index, text) {
    const part = this.part(index, "text");
    part.text = (part.text || "") + text;
    this.schedule();
  }

  startTool(index, call) {
    this.parts[index] = { type: "tool_call", tool_call: { id: call.id, name: call.name, args: "" } };
    this.schedule();
  }

  appendArgs(index, args) {
    const part = this.parts[index];
    if (part && part.type === "tool_call") part.tool_call.args = (part.tool_call.args || "") + args;
    this.schedule();
  }

  completeTool(call) {
    // on_run_step_completed names the wrong index (0 for a tool at 1): match the call's id.
    const part = this.parts.find((p) => p && p.type === "tool_call" && p.tool_call.id === call.id);
    if (part) Object.assign(part.tool_call, call);
    else this.parts.push({ type: "tool_call", tool_call: { ...call } });
    this.schedule();
  }

  addAttachment(attachment) {
    const index = this.attachments.findIndex((a) => a.file_id === attachment.file_id);
    if (index === -1) this.attachments.push(attachment);
    else this.attachments[index] = attachment;
    this.paintFiles();
  }

  setError(text) {
    this.error = text;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
      this.element.dispatchEvent(new CustomEvent("painted", { bubbles: true }));
    });
  }

  text() {
    return this.parts.filter((p) => p && p.type === "text").map((p) => p.text || "").join("");
  }

  paint() {
    if (this.user) {
      this.content.textContent = this.message.text || "";
      return;
    }
    const nodes = [];
    for (const part of this.parts) {
      if (!part) continue;
      if (part.type === "text" && part.text) {
        const block = h("div", { className: "md" });
        renderMarkdown(block, part.text);
        nodes.push(...block.childNodes);
      } else if (part.type === "tool_call" && part.tool_call) {
        const call = part.tool_call;
        const done = call.output !== undefined;
        nodes.push(
          h(
            "details",
            { className: "tool-call", "data-testid": "tool-call" },
            h("summary", { text: `${done ? "Ran" : "Running"} ${call.name || "tool"}` }),
            h("pre", { className: "tool-args", text: toolText(call.args) }),
            done ? h("pre", { className: "tool-output", text: String(call.output) }) : null,
          ),
        );
      } else if (part.type === "error") {
        nodes.push(h("div", { className: "msg-error", role: "alert", text: String(part.error || "The model failed to answer.") }));
      }
    }
    if (this.error) nodes.push(h("div", { className: "msg-error", role: "alert", text: this.error }));
    if (this.message.unfinished && !this.streaming) {
      nodes.push(h("p", { className: "msg-unfinished-note", text: "Stopped before the end." }));
    }
    this.content.replaceChildren(...nodes);
  }

  paintFiles() {
    const files = this.user ? this.message.files || [] : this.attachments;
    const options = { fallbackUserId: this.fallbackUserId, onError: this.onError };
    this.filesBox.replaceChildren(...files.filter((f) => f && f.file_id).map((f) => fileView(f, options)));
    this.filesBox.hidden = !this.filesBox.childElementCount;
  }
}
