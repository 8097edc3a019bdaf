// A second, client-side allowlist for message HTML (the server already cleaned it with nh3).
// Anything not on the list is unwrapped to its text, or dropped with its content.

const HTML_NS = "http://www.w3.org/1999/xhtml";
// "s" is markdown-it's strikethrough; "del" the same meaning in other renderers.
const ALLOWED = new Set([
  "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span",
]);
// Elements whose content is not prose: dropped whole rather than unwrapped.
const DROPPED = new Set([
  "script", "style", "template", "iframe", "frame", "frameset", "object", "embed", "noscript",
  "noembed", "noframes", "xmp", "plaintext", "textarea", "select", "option", "button", "input",
  "form", "img", "picture", "video", "audio", "source", "track", "canvas", "svg", "math",
  "link", "meta", "base", "title", "head",
]);
const URL_SCHEMES = new Set(["http:", "https:", "mailto:"]);
const USERNAME_RE = /^[A-Za-z0-9_]{1,32}$/;
const WILDCARD_RE = /^(room|all|everyone|here)$/;
const MAX_DEPTH = 32;

function safeHref(value) {
  if (!value) return null;
  try {
    const url = new URL(value, document.baseURI);
    return URL_SCHEMES.has(url.protocol) ? value : null;
  } catch {
    return null;
  }
}

function cleanElement(source) {
  const tag = source.localName;
  if (tag === "span") {
    // @room, @all, @everyone (data-wildcard="room") and @here: <span class="mention mention-wildcard">.
    const wildcard = source.getAttribute("data-wildcard") || "";
    if (source.classList.contains("mention-wildcard") && WILDCARD_RE.test(wildcard)) {
      const span = document.createElement("span");
      span.className = "mention mention-wildcard";
      span.setAttribute("data-wildcard", wildcard);
      return span;
    }
    const username = source.getAttribute("data-username") || "";
    if (!source.classList.contains("mention") || !USERNAME_RE.test(username)) return null;
    const span = document.createElement("span");
    span.className = "mention";
    span.setAttribute("data-username", username);
    return span;
  }
  const el = document.createElement(tag);
  if (tag === "a") {
    const href = safeHref(source.getAttribute("href"));
    if (href === null) return null;
    el.setAttribute("href", href);
    const title = source.getAttribute("title");
    if (title) el.setAttribute("title", title);
    el.setAttribute("rel", "noopener noreferrer nofollow");
    el.setAttribute("target", "_blank");
  } else if (tag === "ol") {
    const start = source.getAttribute("start");
    if (start && /^\d{1,6}$/.test(start)) el.setAttribute("start", start);
  }
  return el;
}

function copyChildren(from, to, depth) {
  for (const node of Array.from(from.childNodes)) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.append(document.createTextNode(node.data));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue; // comments, processing instructions
    const tag = node.localName;
    if (node.namespaceURI !== HTML_NS || DROPPED.has(tag)) continue;
    const clean = ALLOWED.has(tag) && depth < MAX_DEPTH ? cleanElement(node) : null;
    if (clean === null) {
      copyChildren(node, to, depth + 1); // unwrap: keep the text, lose the element
    } else {
      copyChildren(node, clean, depth + 1);
      to.append(clean);
    }
  }
}

/** Parse html inertly and return a DocumentFragment holding only allowlisted markup. */
export function sanitizeHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = typeof html === "string" ? html : "";
  const fragment = document.createDocumentFragment();
  copyChildren(template.content, fragment, 0);
  return fragment;
}
