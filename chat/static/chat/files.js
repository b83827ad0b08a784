// Files through the proxy: inline images and downloads from object URLs.
//
// Object URLs are revoked late on purpose. LibreChat's own UI revokes the URL right after
// `a.click()`; Chrome starts the download asynchronously after the click, so it can find the
// URL already gone and save nothing ("Failed - No file") or a 0-byte file. We keep each URL for
// REVOKE_AFTER_MS (plenty for Chrome to open the blob) and revoke whatever is left on pagehide.
import { blob } from "./api.js";

export const REVOKE_AFTER_MS = 60_000;
const live = new Set();
const images = new Map(); // proxy path → Promise<object URL>, for the page's lifetime

addEventListener("pagehide", () => {
  for (const url of live) URL.revokeObjectURL(url);
  live.clear();
  images.clear();
});

// The proxy path of a LibreChat file record (an attachment or a message file).
export function filePath(file, fallbackUserId) {
  const path = String(file.filepath || "");
  if (path.startsWith("/api/files/code/download/")) return path.slice("/api/".length);
  const owner = file.user || fallbackUserId;
  return `files/download/${encodeURIComponent(owner)}/${encodeURIComponent(file.file_id)}`;
}

export function isImage(file) {
  return String(file.type || "").startsWith("image/");
}

export async function imageUrl(path, type) {
  if (!images.has(path)) {
    const promise = blob(path).then((data) => {
      // /api/files/download answers application/octet-stream: give the image its type back.
      const typed = type && data.type !== type ? new Blob([data], { type }) : data;
      const url = URL.createObjectURL(typed);
      live.add(url);
      return url;
    });
    images.set(path, promise);
    promise.catch(() => images.delete(path));
  }
  return images.get(path);
}

export async function download(path, filename) {
  const data = await blob(path);
  const url = URL.createObjectURL(data);
  live.add(url);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename || "download";
  link.rel = "noopener";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => {
    URL.revokeObjectURL(url);
    live.delete(url);
  }, REVOKE_AFTER_MS);
}
