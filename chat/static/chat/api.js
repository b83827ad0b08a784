// Calls to LibreChat through our proxy (/api/chat/<LibreChat /api path>), with the session
// cookie and, on unsafe methods, the CSRF token as X-CSRFToken (docs/chat-proxy.md).

export const PROXY = "/api/chat/";
// Ours (502/504 from the proxy), and LibreChat's own 503 while it is starting up (passed through).
const UNREACHABLE = new Set(["librechat_unreachable", "librechat_session_failed", "librechat_timeout", "SERVER_NOT_READY"]);
// Ours: the web session ended (logged out elsewhere, or the account was deactivated or deleted).
const SIGNED_OUT = new Set(["not_authenticated", "user_not_found", "token_not_valid", "account_inactive"]);

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
  // LibreChat (or the network to it) is down: the page shows its "unreachable" banner.
  get unreachable() {
    return this.status === 0 || UNREACHABLE.has(this.code);
  }
  // LibreChat answers, but is not ready yet (503 SERVER_NOT_READY, `Retry-After: 1`).
  get starting() {
    return this.code === "SERVER_NOT_READY";
  }
  get signedOut() {
    return SIGNED_OUT.has(this.code);
  }
  get notProvisioned() {
    return this.code === "librechat_not_provisioned";
  }
  // With notProvisioned: whether setting the account up goes on by itself.
  get retrying() {
    const error = this.body && this.body.error;
    return Boolean(error && error.retrying);
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function errorFrom(response) {
  let body = null;
  const text = await response.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  // Ours: {"error": {"code", "message"}}; LibreChat's: {"error": "..."}, {"message": "..."} or
  // {"code": "SERVER_NOT_READY"}.
  const ours = body && typeof body.error === "object" && body.error !== null ? body.error : null;
  const code = ours ? ours.code : body && typeof body.code === "string" ? body.code : null;
  const message = ours
    ? ours.message
    : (body && (body.message || body.error)) || (typeof body === "string" ? body : "");
  return new ApiError(response.status, code, String(message || `HTTP ${response.status}`), body);
}

export async function request(method, path, { json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(PROXY + path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "The network request failed.");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw unexpectedBody(response.status, text);
  }
}

// LibreChat refuses some chat POSTs with status 200 and an SSE `event: error` body (denyRequest).
function unexpectedBody(status, text) {
  const event = text.startsWith("event:") || text.startsWith("data:") ? parseFrame(text.trim()) : null;
  const data = event && event.data;
  const detail = data && typeof data === "object" ? data.message || data.error || data.text : data;
  const message = typeof detail === "string" && detail ? detail : "The chat service sent an answer we cannot read.";
  return new ApiError(status, "unexpected_body", message, text);
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, json, options) => request("POST", path, { ...options, json });

// A file through the proxy, as a Blob (for <img> object URLs and downloads).
export async function blob(path, { signal } = {}) {
  let response;
  try {
    response = await fetch(PROXY + path, { signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "The network request failed.");
  }
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

// Server-sent events from a GET, read with fetch so that we choose when to stop (EventSource
// would reconnect by itself to a job that has finished). Yields {name, data}; `: ping` comments
// from the proxy are skipped. LibreChat writes one `event:` + one `data:` line per event.
export async function* events(path, { signal } = {}) {
  let response;
  try {
    response = await fetch(PROXY + path, {
      headers: { Accept: "text/event-stream" },
      signal,
      credentials: "same-origin",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "The network request failed.");
  }
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (error.name === "AbortError") throw error;
        throw new ApiError(0, "network", "The connection to the chat service broke.");
      }
      const { value, done } = chunk;
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseFrame(frame);
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseFrame(frame) {
  let name = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { name, data: JSON.parse(text) };
  } catch {
    return { name, data: text };
  }
}

// RFC 4122 version 4, from getRandomValues (crypto.randomUUID needs a secure context).
export function uuid4() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
