// Entry point for signed-in pages other than a room: header, sidebar, local times, notifications.

import { $, $$, h, readBootstrap } from "./lib/dom.js";
import { excerptOf, followAfterRead, markNotificationsRead, notificationHref, notificationVerb, startShell } from "./lib/shell.js";
import { formatFull, formatWhen, localizeTimes, parseDate } from "./lib/time.js";

const data = readBootstrap();
localizeTimes(document);

if (data.me) {
  const { socket } = startShell({ me: data.me });
  setupNotificationsPage(socket);
}

function markItemRead(item) {
  item.classList.remove("is-unread");
  const tag = $(".tag-unread", item);
  if (tag) tag.remove();
  const link = $(".notification-link", item);
  if (link) link.dataset.unread = "false";
}

function refreshMarkAllButton() {
  const button = $("#mark-all-read-form button");
  if (button) button.disabled = $$(".notification.is-unread").length === 0;
}

/** On the notifications page: opening one marks it read; other tabs' reads show up live. */
function setupNotificationsPage(socket) {
  const list = $("#notification-list");
  if (!list) return;
  list.addEventListener("click", (event) => {
    const link = event.target.closest(".notification-link");
    if (!link || link.dataset.unread !== "true") return;
    const id = Number(link.dataset.notificationId);
    markItemRead(link.closest(".notification"));
    refreshMarkAllButton();
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) {
      markNotificationsRead([id]); // opens elsewhere; keepalive lets it finish
      return;
    }
    event.preventDefault();
    followAfterRead(id, link.href);
  });
  if (!socket) return;
  socket.on("notification", (n) => {
    if (!n || !n.message || $(`.notification[data-notification-id="${n.id}"]`, list)) return;
    list.prepend(buildItem(n));
    const empty = $("#notifications-empty");
    if (empty) empty.remove();
    refreshMarkAllButton();
  });
  socket.on("notifications_read", (payload) => {
    const ids = payload && Array.isArray(payload.ids) ? new Set(payload.ids) : null;
    for (const item of $$(".notification.is-unread", list)) {
      if (!ids || ids.has(Number(item.dataset.notificationId))) markItemRead(item);
    }
    refreshMarkAllButton();
  });
}

/** A live notification, built like the server-rendered ones (text only, never HTML). */
function buildItem(n) {
  const author = n.message.author || { id: 0, display_name: "Someone" };
  const date = parseDate(n.created_at);
  const roomLink = $(`.room-item[data-room-id="${n.room_id}"] .room-name`);
  const time = h("time", { datetime: n.created_at, text: date ? formatWhen(date) : "" });
  if (date) time.title = formatFull(date);
  const text = excerptOf(n.message, 1000);
  const excerpt = text.length > 200 ? `${text.slice(0, 197)}...` : text;
  return h("li", { class: "notification is-unread", dataset: { notificationId: n.id } },
    h("a", { class: "notification-link", href: notificationHref(n), dataset: { notificationId: n.id, unread: "true" } },
      h("span", { class: `avatar hue-${author.id % 8}`, "aria-hidden": "true", text: author.display_name.slice(0, 1).toUpperCase() }),
      h("span", { class: "notification-main" },
        h("span", { class: "notification-head" },
          h("strong", { class: "notification-author", text: author.display_name }),
          author.username && author.display_name !== author.username
            ? h("span", { class: "notification-handle", text: `@${author.username}` }) : null,
          h("span", { class: "muted", text: `${notificationVerb(n)}${roomLink ? ` in #${roomLink.textContent}` : ""}` }),
          time,
          h("span", { class: "tag tag-unread", text: "New" })),
        h("span", { class: "notification-excerpt", text: excerpt }))));
}
