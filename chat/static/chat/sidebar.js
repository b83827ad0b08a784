// The conversation list: cursor-paged GET /convos, title search, the archived view, rename,
// archive and delete (LibreChat's /api/convos routes through the proxy).
import * as api from "./api.js";
import { h } from "./messages.js";

const PAGE_SIZE = 25;
const SEARCH_DELAY_MS = 250;

const ICONS = {
  rename: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  archive: "M4 7h16v3H4zM6 10v9h12v-9M10 14h4",
  unarchive: "M4 7h16v3H4zM6 10v9h12v-9M12 18v-5M9.5 15.5L12 13l2.5 2.5",
  delete: "M5 7h14M10 7V5h4v2M7 7l1 12h8l1-12",
};

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

export class Sidebar {
  constructor({ list, empty, loadMore, search, archived, chatUrl, onOpen, onDeleted, onError, confirm }) {
    Object.assign(this, { list, empty, loadMore, search, archived, chatUrl, onOpen, onDeleted, onError, confirm });
    this.items = [];
    this.cursor = null;
    this.generation = 0;
    this.current = null;
    this.searchTimer = 0;
    loadMore.addEventListener("click", () => this.load().catch(onError));
    search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.reload().catch(onError), SEARCH_DELAY_MS);
    });
    archived.addEventListener("change", () => this.reload().catch(onError));
    list.addEventListener("click", (event) => this.onClick(event));
  }

  url(id) {
    return `${this.chatUrl}c/${encodeURIComponent(id)}/`;
  }

  async reload() {
    this.items = [];
    this.cursor = null;
    this.generation += 1;
    await this.load();
  }

  async load() {
    const generation = this.generation;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), sortBy: "updatedAt", sortDirection: "desc" });
    if (this.cursor) query.set("cursor", this.cursor);
    const term = this.search.value.trim();
    if (term) query.set("search", term);
    if (this.archived.checked) query.set("isArchived", "true");
    this.list.setAttribute("aria-busy", "true");
    this.loadMore.disabled = true;
    try {
      const page = await api.get(`convos?${query}`);
      if (generation !== this.generation) return; // a newer search or view won
      const known = new Set(this.items.map((c) => c.conversationId));
      this.items.push(...(page.conversations || []).filter((c) => !known.has(c.conversationId)));
      this.cursor = page.nextCursor || null;
      this.render();
    } finally {
      this.list.setAttribute("aria-busy", "false");
      this.loadMore.disabled = false;
    }
  }

  render() {
    this.list.replaceChildren(...this.items.map((convo) => this.item(convo)));
    const term = this.search.value.trim();
    this.empty.textContent = term
      ? "No conversation titles match."
      : this.archived.checked
        ? "No archived conversations."
        : "No conversations yet.";
    this.empty.hidden = this.items.length > 0;
    this.loadMore.hidden = !this.cursor;
  }

  item(convo) {
    const id = convo.conversationId;
    const title = convo.title || "New Chat";
    const current = id === this.current;
    const archive = this.archived.checked ? "unarchive" : "archive";
    const button = (action, label) =>
      h("button", { type: "button", "data-action": action, "aria-label": `${label} “${title}”`, title: label }, icon(action));
    return h(
      "li",
      { className: `convo-item${current ? " current" : ""}`, "data-id": id },
      h("a", { className: "convo-link", href: this.url(id), "aria-current": current ? "page" : undefined, text: title }),
      h(
        "span",
        { className: "convo-actions" },
        button("rename", "Rename"),
        button(archive, archive === "archive" ? "Archive" : "Unarchive"),
        button("delete", "Delete"),
      ),
    );
  }

  setCurrent(id) {
    this.current = id;
    this.render();
  }

  // A conversation this page just started (or whose title just came): keep it in view.
  upsert(convo, { top = false } = {}) {
    const index = this.items.findIndex((c) => c.conversationId === convo.conversationId);
    if (index !== -1) {
      this.items[index] = { ...this.items[index], ...convo };
      if (top) this.items.unshift(...this.items.splice(index, 1));
    } else if (top && !this.search.value.trim() && !this.archived.checked) {
      this.items.unshift(convo);
    }
    this.render();
  }

  titleOf(id) {
    return this.items.find((c) => c.conversationId === id)?.title;
  }

  onClick(event) {
    const item = event.target.closest(".convo-item");
    if (!item) return;
    const id = item.dataset.id;
    const link = event.target.closest("a.convo-link");
    if (link) {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      this.onOpen(id);
      return;
    }
    const action = event.target.closest("button[data-action]")?.dataset.action;
    if (action === "rename") this.rename(item, id);
    else if (action === "archive" || action === "unarchive") this.archive(id, action === "archive").catch(this.onError);
    else if (action === "delete") this.remove(id).catch(this.onError);
  }

  rename(item, id) {
    const title = this.titleOf(id) || "New Chat";
    const input = h("input", { className: "convo-rename", type: "text", value: title, "aria-label": "New title", maxlength: "200" });
    const link = item.querySelector(".convo-link");
    link.replaceWith(input);
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const next = input.value.trim();
      if (!save || !next || next === title) {
        this.render();
        this.list.querySelector(`[data-id="${CSS.escape(id)}"] .convo-link`)?.focus();
        return;
      }
      try {
        const saved = await api.post("convos/update", { arg: { conversationId: id, title: next } });
        this.upsert({ conversationId: id, title: saved?.title ?? next });
        document.dispatchEvent(new CustomEvent("convo-renamed", { detail: { id, title: saved?.title ?? next } }));
      } catch (error) {
        this.render();
        this.onError(error);
      }
      this.list.querySelector(`[data-id="${CSS.escape(id)}"] .convo-link`)?.focus();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async archive(id, isArchived) {
    await api.post("convos/archive", { arg: { conversationId: id, isArchived } });
    this.items = this.items.filter((c) => c.conversationId !== id);
    this.render();
  }

  async remove(id) {
    const title = this.titleOf(id) || "this conversation";
    if (!(await this.confirm(`“${title}” and its messages will be deleted.`))) return;
    await api.request("DELETE", "convos", { json: { arg: { conversationId: id } } });
    this.items = this.items.filter((c) => c.conversationId !== id);
    this.render();
    this.onDeleted(id);
  }
}
