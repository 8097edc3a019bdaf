// Small DOM and HTTP helpers shared by every page script.

/** The first element matching selector under root (document by default). */
export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** Every element matching selector under root, as an array. */
export function $$(selector, root = document) {
  return Array.from(root.querySelectorAll(selector));
}

/**
 * Build an element. attrs: plain attributes, plus `class`, `text` (textContent) and
 * `dataset` (undefined and null entries left out); children: nodes or strings (strings become text nodes, never HTML).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") {
      // Absent values are left out (Object.assign would write the string "undefined").
      for (const [name, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[name] = v;
    }
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** The JSON the page template left in <script type="application/json" id="chorus-data">. */
export function readBootstrap() {
  const node = document.getElementById("chorus-data");
  if (!node) return {};
  try {
    return JSON.parse(node.textContent || "{}");
  } catch {
    return {};
  }
}

/** The CSRF token from <meta name="csrf-token">. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

/** An error answered by the REST API: status plus the server's {code, message}. */
export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `Request failed (${status})`);
    this.status = status;
    this.code = (error && error.code) || "error";
  }
}

/** Call the REST API with the session cookie; writes carry the X-CSRFToken header. */
export async function api(path, { method = "GET", body, keepalive = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    keepalive,
  });
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data && data.error);
  return data;
}

/** A random id for idempotent sends (randomUUID needs a secure context; fall back if absent). */
export function newClientId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A user's avatar: their initial on a colour of their own; size "sm" or "lg" (or none). */
export function avatar(user, size = "") {
  const initial = (user.display_name || user.username || "?").slice(0, 1).toUpperCase();
  return h("span", { class: `avatar${size ? ` avatar-${size}` : ""} hue-${user.id % 8}`, "aria-hidden": "true", text: initial });
}

/** Plural helper: plural(3, "member") -> "3 members". */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
