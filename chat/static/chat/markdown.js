// Assistant messages: Markdown (marked) → sanitised HTML (DOMPurify) → highlighted code
// (highlight.js). Nothing from LibreChat reaches innerHTML without DOMPurify.
import DOMPurify from "dompurify";
import hljs from "highlight.js";
import { Marked } from "marked";

const marked = new Marked({ gfm: true, breaks: true });
hljs.configure({ ignoreUnescapedHTML: true });

// Links open in a new tab without handing it our window.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

export function renderMarkdown(element, text) {
  const html = marked.parse(text || "", { async: false });
  element.innerHTML = DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  });
  for (const block of element.querySelectorAll("pre code")) {
    hljs.highlightElement(block);
  }
}
