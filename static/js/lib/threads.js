// "Threads": the threads I follow across my rooms (GET /threads), unread first, from a
// sidebar entry on every signed-in page. Kept current by the room events every socket gets;
// a click opens the thread, in place when it is in the room on screen.

import { ThreadList, rootIdOf, threadHref } from "../room/thread.js";
import { $, api, h, plural } from "./dom.js";
import { formatFull, formatWhen, parseDate } from "./time.js";

const LIST_LIMIT = 100;
const REFRESH_DELAY_MS = 300;

function roomNameOf(roomId) {
  const link = $(`.room-item[data-room-id="${roomId}"] .room-name`);
  return link ? link.textContent : null;
}

function rootExcerpt(root) {
  if (root.deleted) return "This message was deleted";
  const text = String(root.body || "").replace(/\s+/g, " ").trim();
  return text.length > 140 ? `${text.slice(0, 140)}…` : text;
}

/**
 * Wire the sidebar's Threads entry and its dialog. Returns {list, refresh(), render(),
 * setOpener(fn)}: list is the ThreadList, and fn(roomId, rootId) opens a thread of the room
 * on screen (returns false when it cannot).
 */
export function setupThreads({ socket, me }) {
  const list = new ThreadList(me.id);
  const toggle = $("#threads-toggle");
  const badge = $("#threads-unread");
  const dialog = $("#threads-dialog");
  const items = $("#threads-list");
  let opener = null;
  let timer = null;
  let loaded = null;

  function setBadge() {
    if (!badge) return;
    const n = list.unreadThreads;
    badge.textContent = String(n);
    badge.hidden = n === 0;
    badge.setAttribute("aria-label", `${plural(n, "thread")} with unread replies`);
  }

  function item(entry) {
    const { root } = entry;
    const author = (root.author && root.author.display_name) || "Someone";
    const where = roomNameOf(root.room_id);
    const date = parseDate(entry.last_reply_at);
    const link = h("a", { class: "thread-item-link", href: threadHref(root.room_id, root.id), dataset: { threadRoot: root.id, roomId: root.room_id } },
      h("span", { class: "thread-item-head" },
        h("strong", { text: author }),
        where ? h("span", { class: "muted", text: ` in #${where}` }) : null,
        date ? h("time", { datetime: entry.last_reply_at, title: formatFull(date), text: formatWhen(date) }) : null),
      h("span", { class: "thread-item-excerpt", text: rootExcerpt(root) }),
      h("span", { class: "thread-item-foot" },
        h("span", { class: "thread-item-count", text: `${entry.reply_count} ${entry.reply_count === 1 ? "reply" : "replies"}` }),
        entry.unread > 0 ? h("span", { class: "badge thread-item-unread", text: `${entry.unread} new` }) : null));
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      if (opener && opener(root.room_id, root.id)) {
        event.preventDefault();
        if (dialog && dialog.open) dialog.close();
      }
    });
    return h("li", { class: `thread-item${entry.unread > 0 ? " is-unread" : ""}` }, link);
  }

  function render() {
    setBadge();
    if (!items || !dialog || !dialog.open) return;
    const entries = list.sorted();
    items.replaceChildren(...(entries.length
      ? entries.map(item)
      : [h("li", { class: "muted thread-list-empty", text: "No threads yet. Reply to a message, or follow a thread, and it shows up here." })]));
  }

  async function refresh() {
    try {
      const data = await api(`/api/v1/threads?limit=${LIST_LIMIT}`);
      list.load(data.threads || []);
      loaded = true;
    } catch (err) {
      if (loaded === null) loaded = false;
      console.warn("chorus: could not load the threads", err);
    }
    render();
    return list;
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_DELAY_MS);
  }

  if (toggle && dialog) {
    toggle.addEventListener("click", () => {
      dialog.showModal();
      if (items) items.replaceChildren(h("li", { class: "muted thread-list-empty", text: "Loading…" }));
      refresh();
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close(); // the backdrop
    });
  }

  if (socket) {
    socket.on("message", (m) => {
      if (!rootIdOf(m)) return;
      if (list.applyReply(m)) render();
      else if (m.author && m.author.id === me.id && !list.has(rootIdOf(m))) refreshSoon(); // replying follows
    });
    socket.on("message_updated", (m) => {
      if (!m) return;
      if (!rootIdOf(m)) {
        if (list.applyRoot(m)) render();
      } else if (m.deleted && list.has(rootIdOf(m))) {
        // A deleted reply no longer counts; whether it did is the server's to say.
        refreshSoon();
      }
      // An edit or a reaction changes no count.
    });
    socket.on("thread_read", (event) => {
      if (event && list.applyRead(event)) render();
    });
    socket.on("notification", (n) => {
      // A mention in a thread, or a reply in one I follow that this list does not know yet.
      const rootId = n && n.message ? rootIdOf(n.message) : 0;
      if (rootId && !list.has(rootId)) refreshSoon();
    });
  }

  return {
    list,
    refresh,
    render,
    /** fn(roomId, rootId) -> true when it opened the thread in place. */
    setOpener(fn) {
      opener = fn;
    },
  };
}
